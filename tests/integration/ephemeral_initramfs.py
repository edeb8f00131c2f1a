"""The built initramfs, opened on the host: its entries, and its agent run with its own busybox.

`read_newc` parses the gzip'd newc cpio archive independently of the build script's writer, so
the tests check the archive the kernel gets, not the writer's intent. `unpack` writes its
files, directories and symlinks into a directory (device nodes are skipped), and `AgentRun`
runs the unpacked agent with the unpacked busybox (PATH holds nothing else, so a host tool the
initramfs lacks cannot hide) against a stand-in API on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

HEADER = 110  # "070701" and 13 eight-digit hex fields


@dataclass(frozen=True)
class CpioEntry:
    path: str
    mode: int
    uid: int
    gid: int
    mtime: int
    rdev: tuple[int, int]
    data: bytes

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def read_newc(initrd: Path) -> list[CpioEntry]:
    """The entries of a gzip'd newc archive in archive order, without the trailer."""
    raw = gzip.decompress(initrd.read_bytes())
    entries: list[CpioEntry] = []
    pos = 0
    while True:
        if raw[pos : pos + 6] != b"070701":
            raise ValueError(f"no newc header at offset {pos}")
        f = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        _ino, mode, uid, gid, _nlink, mtime, size, _maj, _min, rmaj, rmin, namesize, _ = f
        name = raw[pos + HEADER : pos + HEADER + namesize - 1].decode()
        start = _pad4(pos + HEADER + namesize)
        if name == "TRAILER!!!":
            return entries
        entries.append(
            CpioEntry(name, mode, uid, gid, mtime, (rmaj, rmin), raw[start : start + size])
        )
        pos = _pad4(start + size)


def unpack(entries: list[CpioEntry], root: Path) -> None:
    for e in entries:
        target = root / e.path
        if e.is_dir:
            target.mkdir(parents=True, exist_ok=True)
        elif e.is_symlink:
            target.symlink_to(e.data.decode())
        elif stat.S_ISREG(e.mode):
            target.write_bytes(e.data)
            target.chmod(stat.S_IMODE(e.mode))


@dataclass
class AgentRun:
    """The agent of an unpacked initramfs, run on the host with fake /sys and /proc."""

    root: Path  # the unpacked initramfs
    work: Path  # for the agent's scratch files and the applet links

    def applets(self) -> Path:
        """A directory of links to the initramfs's busybox, one per applet: the agent's PATH."""
        bindir = self.work / "bin"
        if not bindir.exists():
            bindir.mkdir(parents=True)
            busybox = self.root / "bin" / "busybox"
            names = subprocess.run(
                [str(busybox), "--list"], capture_output=True, text=True, check=True
            ).stdout.split()
            for name in names:
                (bindir / name).symlink_to(busybox)
        return bindir

    def run(
        self, url: str, token: str, sysfs: Path, proc: Path, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": str(self.applets()),
            "EDGEBOX_URL": url,
            "EDGEBOX_TOKEN": token,
            "EDGEBOX_PURPOSE": "enlist",
            "EDGEBOX_BOOT_MAC": "",
            "EDGEBOX_WORK": str(self.work / "agent"),
            "EDGEBOX_SYSFS": str(sysfs),
            "EDGEBOX_PROC": str(proc),
            **env,
        }
        agent = self.root / "usr" / "bin" / "edgebox-agent"
        return subprocess.run(
            [str(self.applets() / "sh"), str(agent)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.work,
        )


def write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    """Files (and, for values starting with "->", symlinks) under `root`."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:].strip(), path)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
