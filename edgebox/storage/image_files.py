"""The image cache's files on disk, stored by content hash.

    <images dir>/sha256/<hex>    complete files whose SHA-256 and size were checked
    <images dir>/partial/<hex>   downloads in progress, named by the hash they should have

A file reaches `sha256/` only by `commit()`: fsync the partial, rename it into place, fsync the
directory. So a name under `sha256/` always holds exactly the bytes its hash names, through a
crash or a power cut, and `partial/` is never served; a partial left by a crash or a dropped
connection is where a later download resumes. The methods block (file system calls): callers
on the event loop run the slow ones (commit, hashing) in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

_HEX = re.compile(r"[0-9a-f]{64}")


class ImageFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.complete_dir = root / "sha256"
        self.partial_dir = root / "partial"

    def ensure_dirs(self) -> None:
        for path in (self.complete_dir, self.partial_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o755)

    def path(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
        return self.complete_dir / sha256

    def partial(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
        return self.partial_dir / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def partial_size(self, sha256: str) -> int:
        try:
            return self.partial(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    def commit(self, sha256: str) -> Path:
        """Make a verified partial complete: fsync, rename into sha256/, fsync the directory."""
        source, target = self.partial(sha256), self.path(sha256)
        with source.open("rb") as f:
            os.fsync(f.fileno())
        source.chmod(0o644)
        os.replace(source, target)
        _fsync_dir(self.complete_dir)
        return target

    def drop_partial(self, sha256: str) -> None:
        self.partial(sha256).unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
        self.drop_partial(sha256)

    def stored(self) -> list[str]:
        """The hashes of the complete files present."""
        if not self.complete_dir.is_dir():
            return []
        return sorted(p.name for p in self.complete_dir.iterdir() if _HEX.fullmatch(p.name))

    def partials(self) -> list[str]:
        if not self.partial_dir.is_dir():
            return []
        return sorted(p.name for p in self.partial_dir.iterdir() if _HEX.fullmatch(p.name))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)
