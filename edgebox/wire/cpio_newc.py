"""A cpio archive in the "newc" format (the one the Linux kernel unpacks as an initramfs).

Used for the one small initrd edgebox makes per boot: the agent's token, which iPXE loads
after the ephemeral environment's own initrd; the kernel unpacks both into one ramdisk, so the
token reaches /etc/edgebox/token without ever being on the kernel command line.

Format (kernel Documentation/driver-api/early-userspace/buffer-format.rst): per entry a
110-byte ASCII header — magic "070701" and 13 fields of 8 hex digits (inode, mode, uid, gid,
nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check) — then the
NUL-terminated name, padded to 4 bytes, then the data, padded to 4 bytes; a last entry named
"TRAILER!!!" ends the archive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_DIR = 0o040000
_FILE = 0o100000
TRAILER = "TRAILER!!!"


@dataclass(frozen=True, slots=True)
class CpioEntry:
    name: str  # relative path, no leading "/"
    data: bytes | None  # None: a directory
    mode: int = 0o755  # permission bits


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _entry(inode: int, name: str, mode: int, nlink: int, data: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (inode, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % field for field in fields)
    return header + encoded + _pad(len(header) + len(encoded)) + data + _pad(len(data))


def encode_newc(entries: Sequence[CpioEntry]) -> bytes:
    out = []
    for inode, entry in enumerate(entries, 1):
        if entry.name.startswith("/") or not entry.name or ".." in entry.name.split("/"):
            raise ValueError(f"cpio entry name must be a relative path: {entry.name!r}")
        if entry.data is None:
            out.append(_entry(inode, entry.name, _DIR | entry.mode, 2, b""))
        else:
            out.append(_entry(inode, entry.name, _FILE | entry.mode, 1, entry.data))
    out.append(_entry(0, TRAILER, 0, 1, b""))
    return b"".join(out)


class CpioError(ValueError):
    """Not a newc archive, or a damaged one; the message says where."""


def decode_newc(data: bytes) -> list[CpioEntry]:
    """The entries of a newc archive up to its trailer (what the kernel would unpack)."""
    entries: list[CpioEntry] = []
    at = 0
    while True:
        header = data[at : at + 110]
        if len(header) < 110 or header[:6] != b"070701":
            raise CpioError(f"no newc header at byte {at}")
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise CpioError(f"a header field at byte {at} is not hexadecimal") from None
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_at = at + 110
        name = data[name_at : name_at + namesize - 1].decode(errors="replace")
        body_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == TRAILER:
            return entries
        body = data[body_at : body_at + size]
        if len(body) != size:
            raise CpioError(f"{name}: {size} bytes announced, {len(body)} present")
        is_dir = mode & 0o170000 == _DIR
        entries.append(CpioEntry(name, None if is_dir else body, mode & 0o7777))
        at = body_at + size + (-size % 4)
