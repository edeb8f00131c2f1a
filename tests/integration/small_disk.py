"""A small file system of the test's own (a tmpfs mounted on a temporary directory), filled to
the last byte and freed again, for tests of what edgebox does when its disk is full.

    with small_disk(tmp_path / "disk") as disk:
        ...edgebox with data_dir under disk...
        filler = fill(disk)      # no byte left
        filler.unlink()          # space is back

Unmounted at the end even when the test fails (lazily if a process still has a file open).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.lab import skip_unless_lab
from tests.lab.processes import which

CHUNKS = (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1)


@contextlib.contextmanager
def small_disk(mountpoint: Path, size: str = "4m") -> Iterator[Path]:
    skip_unless_lab("mount", "umount")  # root, and the tools
    mount, umount = which("mount") or "mount", which("umount") or "umount"
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        done = subprocess.run([umount, str(mountpoint)], capture_output=True, check=False)
        if done.returncode != 0:  # a process still holds a file there: detach it now
            subprocess.run([umount, "-l", str(mountpoint)], capture_output=True, check=False)


def fill(disk: Path, name: str = "filler") -> Path:
    """Write a file until the file system has no byte left for it; returns its path."""
    path = disk / name
    with path.open("ab", buffering=0) as filler:
        for chunk in CHUNKS:
            data = b"\0" * chunk
            while True:
                try:
                    filler.write(data)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        os.fsync(filler.fileno())
    return path


def free_bytes(disk: Path) -> int:
    stat = os.statvfs(disk)
    return stat.f_bfree * stat.f_frsize
