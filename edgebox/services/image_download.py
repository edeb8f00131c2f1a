"""Bringing one file into the cache: resume a partial, retry what can be retried, verify.

The partial file is named by the hash it should have (storage/image_files.py), so a download
interrupted by a dropped connection, a failed upstream or a restart of edgebox resumes from
the bytes already on disk: they are hashed again first (a SHA-256 cannot be saved mid-way
with hashlib), then the source sends the rest. Retries back off and give up after
`attempts` tries in a row that brought no new byte; a try that made progress resets the count.

Nothing is trusted until the end: once the partial holds `size` bytes its SHA-256 must be the
manifest's, or the partial is deleted (it can never become right by resuming) and the import
fails saying so. Only then is it fsynced and renamed into the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import BinaryIO

from edgebox.domain.image_manifest import ImageFile
from edgebox.services.image_sources import FetchError, ImageSource
from edgebox.storage.image_files import ImageFiles

log = logging.getLogger(__name__)

FLUSH_BYTES = 1 << 20
MAX_BACKOFF = 30.0
Progress = Callable[[int], None]  # called with the bytes just added (negative: thrown away)


class ContentMismatch(Exception):
    """The bytes received are not the file the signed manifest names (never retryable)."""


class PartialSink:
    """Appends to a partial file, hashing as it goes, in a thread in 1 MiB steps so that
    neither the disk nor SHA-256 holds up the event loop."""

    def __init__(
        self,
        handle: BinaryIO,
        digest: hashlib._Hash,
        size: int,
        file: ImageFile,
        progress: Progress,
    ) -> None:
        self._f = handle
        self._digest = digest
        self._size = size
        self._file = file
        self._progress = progress
        self._buffer = bytearray()

    @classmethod
    async def open(cls, files: ImageFiles, file: ImageFile, progress: Progress) -> PartialSink:
        path = files.partial(file.sha256)
        files.ensure_dirs()

        def prepare() -> tuple[BinaryIO, hashlib._Hash, int]:
            handle = path.open("a+b")
            handle.seek(0)
            digest = hashlib.sha256()
            size = 0
            if path.stat().st_size > file.size:  # longer than the file can be: start over
                handle.truncate(0)
            while chunk := handle.read(FLUSH_BYTES):
                digest.update(chunk)
                size += len(chunk)
            return handle, digest, size

        handle, digest, size = await asyncio.to_thread(prepare)
        if size:
            log.info("image file resumes sha256=%s at=%d of=%d", file.sha256, size, file.size)
            progress(size)
        return cls(handle, digest, size, file, progress)

    @property
    def size(self) -> int:
        return self._size + len(self._buffer)

    async def write(self, data: bytes) -> None:
        if self.size + len(data) > self._file.size:
            raise ContentMismatch(
                f"{self._file.name}: the source sent more than the {self._file.size} bytes "
                "the signed manifest says"
            )
        self._buffer += data
        self._progress(len(data))
        if len(self._buffer) >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()

        def append() -> None:
            self._f.write(data)
            self._f.flush()
            self._digest.update(data)

        await asyncio.to_thread(append)
        self._size += len(data)

    async def restart(self) -> None:
        self._progress(-self.size)
        self._buffer.clear()

        def truncate() -> None:
            self._f.truncate(0)
            self._f.seek(0)

        await asyncio.to_thread(truncate)
        self._digest = hashlib.sha256()
        self._size = 0

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._f.close()


async def download(
    files: ImageFiles,
    source: ImageSource,
    file: ImageFile,
    progress: Progress,
    *,
    attempts: int = 5,
    backoff: float = 1.0,
) -> None:
    """Bring `file` into `files` from `source`; raise FetchError or ContentMismatch."""
    if files.has(file.sha256):
        progress(file.size)
        return
    sink = await PartialSink.open(files, file, progress)
    try:
        got = await _fill(sink, source, file, attempts, backoff)
    except ContentMismatch:
        files.drop_partial(file.sha256)
        progress(-sink.size)
        raise
    finally:
        sink.close()
    if got != file.sha256:
        files.drop_partial(file.sha256)
        progress(-file.size)
        raise ContentMismatch(
            f"{file.name}: SHA-256 is {got}, but the signed manifest says {file.sha256}: the "
            "file was changed or damaged after signing; the download was deleted"
        )
    await asyncio.to_thread(files.commit, file.sha256)


async def _fill(
    sink: PartialSink, source: ImageSource, file: ImageFile, attempts: int, backoff: float
) -> str:
    """Fetch until the sink holds `file.size` bytes; return their SHA-256."""
    fruitless = 0
    while sink.size < file.size:
        before = sink.size
        try:
            await source.fetch(file, sink)
            await sink.flush()
            if sink.size < file.size:
                raise FetchError(
                    f"{file.name}: the source ended at {sink.size} of {file.size} bytes", True
                )
        except FetchError as exc:
            await sink.flush()
            if not exc.retryable:
                raise
            fruitless = 1 if sink.size > before else fruitless + 1
            if fruitless >= attempts:
                raise FetchError(f"{exc} (gave up after {attempts} tries)", True) from None
            delay = min(MAX_BACKOFF, backoff * 2 ** (fruitless - 1))
            log.warning(
                "image file retry sha256=%s at=%d in=%.1fs error=%s",
                file.sha256,
                sink.size,
                delay,
                exc,
            )
            await asyncio.sleep(delay)
    await sink.flush()
    return sink.hexdigest()
