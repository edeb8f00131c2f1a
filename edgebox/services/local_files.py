"""Reading files that someone named (an image to import, a build output directory), bounded.

`open_regular` opens a path only if it is a regular file: the open does not block (a FIFO's
open would wait for a writer for ever) and the type is checked on the opened descriptor, so a
path swapped between a check and the open cannot slip a device in. `read_bounded` reads at
most `limit` bytes and refuses a longer file, so `/dev/zero` or a huge file named as a small
manifest costs no more memory than the limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class TooLarge(OSError):
    """A file longer than its reader takes."""


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file; OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"it is {file_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole of the regular file `path`, if it holds at most `limit` bytes."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(errno.EFBIG, f"larger than {limit} bytes")
    return data


def check_regular_or_directory(path: Path) -> None:
    """ValueError if `path` exists and is neither a regular file nor a directory (a path that
    does not exist is left for its reader to report)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise ValueError(f"{path} is {file_kind(mode)}, not a regular file or a directory")


def file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")
