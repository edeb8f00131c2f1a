"""The files TFTP serves: a requested name mapped to a file under the roots, or generated.

`TftpFiles.open(name, client_ip)` is the filesystem half of path safety (the pure half is
`edgebox.wire.tftp.normalise_request_path`, applied again here so this class is safe on its own):
1. A name withheld with `withhold` is unavailable (ERROR 0), whatever is on disk. Else a
   generated file registered under the name wins (`register_generated`): e.g. a tiny iPXE
   script for clients that can only fetch by TFTP, rendered per client address.
2. Else the roots are tried in order; the first one where the name exists is used. The
   name is resolved with every symlink followed, and the result must lie inside one of the
   roots (also resolved): a symlink to another root is fine, one that leads anywhere else is an
   access violation, as is a `..` or a control character in the name.
3. A directory or a dangling symlink is "not found"; a device, FIFO or socket is an access
   violation (opening a FIFO would block the event loop); a permission error is an access
   violation and any other I/O error "unavailable" (the client may retry).
4. The file is opened without following a last symlink and checked once more through
   /proc/self/fd, so a symlink swapped in between the check and the open cannot leak a file.

A file's bytes are read with `os.pread` per block: no whole-file reads, and one descriptor can
serve any number of concurrent transfers. Descriptors are shared per file (same device, inode,
size and modification time) and kept for `idle_seconds` after their last transfer ends, so a
PXE ROM's tsize probe and the fetch that follows, or a rack booting at once, open the file once;
a file replaced on disk gets a new descriptor while running transfers finish on the old one.
`close_idle()` (called on every open and periodically by the listener) closes idle ones.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgebox.services.clock import Clock, SystemClock
from edgebox.wire.tftp import FileError, FileErrorKind, RequestPathError, normalise_request_path

__all__ = ["GeneratedFile", "Generator", "ServedFile", "TftpFiles"]

log = logging.getLogger(__name__)

Generator = Callable[[str], bytes]  # client IP -> the file's bytes for that client

IDLE_SECONDS = 10.0
MAX_CACHED = 64
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class ServedFile(Protocol):
    """What a transfer reads from; `close` when the transfer has ended (idempotent)."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class GeneratedFile:
    """The bytes a generator produced for one request."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    @property
    def size(self) -> int:
        return len(self._content)

    def read(self, offset: int, length: int) -> bytes:
        return self._content[offset : offset + length]

    def close(self) -> None:
        pass


IN_MEMORY_LIMIT = 16 << 20  # files up to this size are served from memory


@dataclass(slots=True, eq=False)
class _SharedFd:
    path: str
    fd: int
    identity: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
    users: int = 0
    idle_since: float = 0.0
    cached: bool = True
    # The whole file, for the small files TFTP mostly serves (loaders are 70 KB-1 MB): a block
    # is then a slice instead of a pread(2) per block, which was a fifth of the server's time
    # in windowed transfers. Read once through the checked descriptor; never mmap'ed, since a
    # file truncated in place would SIGBUS the daemon.
    content: bytes | None = None


class _DiskFile:
    """One transfer's handle on a shared descriptor."""

    __slots__ = ("_closed", "_fd", "_files", "_shared", "size")

    def __init__(self, files: TftpFiles, shared: _SharedFd) -> None:
        self._files = files
        self._shared = shared
        self._fd = shared.fd
        self.size = shared.identity[2]
        self._closed = False

    def read(self, offset: int, length: int) -> bytes:
        content = self._shared.content
        if content is not None:
            return content[offset : offset + length]
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._files._release(self._shared)


def _small_content(fd: int, size: int) -> bytes | None:
    """The whole file if it is small enough to serve from memory (else pread per block)."""
    if size > IN_MEMORY_LIMIT:
        return None
    try:
        content = os.pread(fd, size, 0)
    except OSError:
        return None  # the per-block reads will report it
    return content if len(content) == size else None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stat_regular(real: str, candidate: str) -> os.stat_result | FileError:
    """`real`'s status if it is a regular file, else the error the client gets."""
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return FileError(FileErrorKind.NOT_FOUND, f"dangling symlink {candidate}")
    except PermissionError as exc:
        return FileError(FileErrorKind.ACCESS_VIOLATION, f"{real}: {exc.strerror}")
    except OSError as exc:
        return FileError(FileErrorKind.UNAVAILABLE, f"{real}: {exc.strerror or exc}")
    if stat.S_ISDIR(st.st_mode):
        return FileError(FileErrorKind.NOT_FOUND, f"{real} is a directory")
    if not stat.S_ISREG(st.st_mode):
        return FileError(FileErrorKind.ACCESS_VIOLATION, f"{real} is not a regular file")
    return st


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class TftpFiles:
    """Resolves TFTP names under `roots` (searched in order) and hands out readable files."""

    def __init__(
        self,
        roots: Sequence[Path],
        clock: Clock | None = None,
        idle_seconds: float = IDLE_SECONDS,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self.roots = tuple(roots)
        self._clock = clock or SystemClock()
        self._idle_seconds = idle_seconds
        self._max_cached = max_cached
        self._generated: dict[str, Generator] = {}
        self._withheld: dict[str, str] = {}
        self._cache: dict[str, _SharedFd] = {}
        self._open_fds = 0

    @property
    def open_descriptors(self) -> int:
        """Descriptors held now, cached idle ones included."""
        return self._open_fds

    def register_generated(self, name: str, generator: Generator) -> None:
        """Serve `generator(client_ip)` under `name`, in preference to any file on disk."""
        self._generated[normalise_request_path(name)] = generator

    def withhold(self, name: str, reason: str) -> None:
        """Refuse `name` as unavailable although it exists (e.g. a loader whose checksum does
        not match SHA256SUMS: a corrupted loader must not be served)."""
        self._withheld[normalise_request_path(name)] = reason

    def open(self, name: str, client_ip: str) -> ServedFile | FileError:
        """The file a client asked for, or why not. Never raises (the TFTP core's contract)."""
        try:
            path = normalise_request_path(name)
        except RequestPathError as exc:
            return FileError(FileErrorKind.ACCESS_VIOLATION, exc.reason)
        if path in self._withheld:
            return FileError(FileErrorKind.UNAVAILABLE, f"withheld: {self._withheld[path]}")
        generator = self._generated.get(path)
        if generator is not None:
            return self._generate(path, generator, client_ip)
        self.close_idle()
        roots = [os.path.realpath(root) for root in self.roots]
        for root in roots:
            candidate = os.path.join(root, path)
            if os.path.lexists(candidate):
                return self._open_under(candidate, roots)
        return FileError(FileErrorKind.NOT_FOUND, f"not under {', '.join(roots) or 'any root'}")

    def close_idle(self) -> int:
        """Close cached descriptors unused for `idle_seconds`; returns how many."""
        if not self._cache:
            return 0
        limit = self._clock.monotonic() - self._idle_seconds
        stale = [s for s in self._cache.values() if s.users == 0 and s.idle_since <= limit]
        for shared in stale:
            self._uncache(shared)
        return len(stale)

    def close(self) -> None:
        """Close every idle descriptor now; those still in use close with their last transfer."""
        for shared in list(self._cache.values()):
            self._uncache(shared)

    # --- internals ---------------------------------------------------------------------

    @staticmethod
    def _generate(path: str, generator: Generator, client_ip: str) -> ServedFile | FileError:
        try:
            content = generator(client_ip)
        except Exception as exc:  # a generator's bug must not end the request loop
            log.exception("tftp generated file failed name=%s client=%s", path, client_ip)
            return FileError(FileErrorKind.UNAVAILABLE, f"generator failed: {exc!r}")
        return GeneratedFile(bytes(content))

    def _open_under(self, candidate: str, roots: list[str]) -> ServedFile | FileError:
        real = os.path.realpath(candidate)
        if not any(_inside(real, root) for root in roots):
            return FileError(FileErrorKind.ACCESS_VIOLATION, f"resolves outside the roots: {real}")
        st = _stat_regular(real, candidate)
        if isinstance(st, FileError):
            return st
        shared = self._cache.get(real)
        if shared is None or shared.identity != _identity(st):
            opened = self._open_fd(real, roots)
            if isinstance(opened, FileError):
                return opened
            shared = opened
        shared.users += 1
        return _DiskFile(self, shared)

    def _open_fd(self, real: str, roots: list[str]) -> _SharedFd | FileError:
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except PermissionError as exc:
            return FileError(FileErrorKind.ACCESS_VIOLATION, f"{real}: {exc.strerror}")
        except FileNotFoundError:
            return FileError(FileErrorKind.NOT_FOUND, f"{real} vanished")
        except OSError as exc:  # ELOOP: a symlink swapped in after the check, among others
            return FileError(FileErrorKind.UNAVAILABLE, f"{real}: {exc.strerror or exc}")
        try:
            st = os.fstat(fd)
            opened = self._opened_path(fd, real)
        except OSError as exc:
            os.close(fd)
            return FileError(FileErrorKind.UNAVAILABLE, f"{real}: {exc.strerror or exc}")
        if not stat.S_ISREG(st.st_mode) or not any(_inside(opened, root) for root in roots):
            os.close(fd)
            return FileError(FileErrorKind.ACCESS_VIOLATION, f"{real} changed while opened")
        self._open_fds += 1
        shared = _SharedFd(real, fd, _identity(st), content=_small_content(fd, st.st_size))
        self._cache_new(shared)
        return shared

    @staticmethod
    def _opened_path(fd: int, real: str) -> str:
        """Where the descriptor really points (Linux); `real` where /proc is not mounted."""
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            return real

    def _cache_new(self, shared: _SharedFd) -> None:
        old = self._cache.get(shared.path)
        if old is not None:
            self._uncache(old)  # replaced on disk: it closes when its last transfer ends
        if len(self._cache) >= self._max_cached:
            idle = sorted(
                (s for s in self._cache.values() if s.users == 0), key=lambda s: s.idle_since
            )
            for victim in idle[: len(self._cache) - self._max_cached + 1]:
                self._uncache(victim)
        if len(self._cache) < self._max_cached:
            self._cache[shared.path] = shared
        else:
            shared.cached = False  # every cached one is busy: this one closes after use

    def _uncache(self, shared: _SharedFd) -> None:
        """Forget a descriptor: closed now if idle, else when its last transfer ends."""
        if self._cache.get(shared.path) is shared:
            del self._cache[shared.path]
        shared.cached = False
        if shared.users == 0:
            self._close_fd(shared)

    def _release(self, shared: _SharedFd) -> None:
        shared.users -= 1
        if shared.users > 0:
            return
        if shared.cached:
            shared.idle_since = self._clock.monotonic()
        else:
            self._close_fd(shared)

    def _close_fd(self, shared: _SharedFd) -> None:
        if shared.fd >= 0:
            os.close(shared.fd)
            shared.fd = -1
            self._open_fds -= 1
