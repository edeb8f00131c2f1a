"""Re-hashing an image's files when a deploy starts, once per file version.

The cache verified every file when it was imported, but a file can change afterwards (bit rot,
a person editing the cache by hand), and a deploy of such a file would write garbage to
hundreds of disks. So every deploy re-checks the image's files before any machine is powered
on — cached by the file's identity on disk (size, mtime, inode): a batch of 300 deploys, or the
deploys of the next hour, hash each file once, and a file that changes is hashed again.
Concurrent checks of one file share one hashing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

from edgebox.storage.image_files import ImageFiles
from edgebox.storage.image_store import ImageRecord

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_CACHE_LIMIT = 4096

FileKey = tuple[int, int, int]  # size, mtime_ns, inode


class ImageFileChecks:
    def __init__(self, files: ImageFiles) -> None:
        self._files = files
        self._verdicts: dict[tuple[str, FileKey], str] = {}  # (sha256, key) -> "ok" / problem
        self._running: dict[tuple[str, FileKey], asyncio.Task[str]] = {}
        self.hashed = 0  # files hashed since start (for tests and the bench)

    async def problems(self, image: ImageRecord) -> list[str]:
        """What is wrong with the image's files on disk now; empty: every one is intact."""
        found = []
        seen: set[str] = set()
        for file in image.manifest.files:
            if file.sha256 in seen:
                continue
            seen.add(file.sha256)
            verdict = await self._check(file.sha256, file.size)
            if verdict != "ok":
                found.append(f"{file.name}: {verdict}")
        return found

    async def _check(self, sha256: str, size: int) -> str:
        path = self._files.path(sha256)
        try:
            st = await asyncio.to_thread(os.stat, path)
        except FileNotFoundError:
            return "missing from the cache"
        if st.st_size != size:
            return f"{st.st_size} bytes on disk, the manifest says {size}"
        key = (sha256, (st.st_size, st.st_mtime_ns, st.st_ino))
        known = self._verdicts.get(key)
        if known is not None:
            return known
        task = self._running.get(key)
        if task is None:
            # A task, awaited shielded: a caller that gives up does not stop the hashing
            # that the other callers wait for.
            task = asyncio.create_task(self._hash(path, key), name=f"image-check-{sha256[:12]}")
            self._running[key] = task
        return await asyncio.shield(task)

    async def _hash(self, path: Path, key: tuple[str, FileKey]) -> str:
        try:
            verdict = await asyncio.to_thread(_hash_verdict, path, key[0])
        except OSError as exc:
            verdict = f"cannot be read ({exc.strerror or exc})"
        finally:
            self._running.pop(key, None)
        self.hashed += 1
        if len(self._verdicts) >= _CACHE_LIMIT:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        if verdict != "ok":
            log.error("image file damaged sha256=%s path=%s: %s", key[0], path, verdict)
        return verdict


def _hash_verdict(path: Path, sha256: str) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    actual = digest.hexdigest()
    return "ok" if actual == sha256 else f"damaged (its SHA-256 is now {actual[:16]}…)"
