"""The shared libraries a dynamically linked program needs, found in unpacked Debian packages.

busybox is static, but some tools the initramfs needs exist in Debian only as dynamically
linked programs (zstd: deploy images are zstd-compressed by default, and busybox has no zstd).
Such a program runs in the initramfs if its ELF interpreter and every library it names
(DT_NEEDED, recursively) are there too. This module reads those two things from the ELF files
themselves (64-bit little-endian only, the amd64 build's case) and finds each library in the
packages the build unpacked, so a library that no listed package provides stops the build
instead of failing at deploy time.

Everything is placed in /lib/x86_64-linux-gnu, a directory the Debian loader searches without
an ld.so.cache, and the interpreter also where the program's PT_INTERP names it.
Standard library only: the build runs on a bare Debian host.
"""

from __future__ import annotations

import struct
from pathlib import Path, PurePosixPath

LIB_DIR = "lib/x86_64-linux-gnu"
SEARCH = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


class MissingLibrary(RuntimeError):
    """A program or library names a library that none of the unpacked packages has."""


def _cstring(data: bytes, offset: int) -> str:
    return data[offset : data.index(b"\0", offset)].decode()


def elf_needs(data: bytes) -> tuple[str | None, list[str]]:
    """(PT_INTERP path or None, DT_NEEDED sonames) of a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    interp = None
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None  # (offset, size)
    for i in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == PT_INTERP:
            interp = _cstring(data, offset)
        elif p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return interp, []  # statically linked
    entries = [struct.unpack_from("<qQ", data, dynamic[0] + at) for at in range(0, dynamic[1], 16)]
    strtab_vaddr = next(value for tag, value in entries if tag == DT_STRTAB)
    # DT_STRTAB is an address in memory: find the file offset of the segment that maps it.
    strtab = next(off + strtab_vaddr - va for va, off, size in loads
                  if va <= strtab_vaddr < va + size)  # fmt: skip
    needed = []
    for tag, value in entries:
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed.append(_cstring(data, strtab + value))
    return interp, needed


def _find(soname: str, roots: list[Path]) -> Path | None:
    for root in roots:
        for directory in SEARCH:
            candidate = root / directory / soname
            if candidate.is_symlink() or candidate.exists():
                return _resolve_in(root, candidate)
    return None


def _resolve_in(root: Path, path: Path) -> Path:
    """Follow symlinks inside an unpacked package (absolute targets are relative to it)."""
    for _ in range(16):
        if not path.is_symlink():
            return path
        target = PurePosixPath(str(path.readlink()))
        path = root / target.relative_to("/") if target.is_absolute() else path.parent / target
    raise MissingLibrary(f"symlink loop at {path}")


def closure(programs: dict[str, Path], roots: list[Path]) -> tuple[dict[str, Path], list[str]]:
    """Files to install ({initramfs path: source file}) so that `programs` ({initramfs path:
    source file}) run, and the interpreter paths to link to the one in LIB_DIR."""
    files = dict(programs)
    interps: set[str] = set()
    todo = list(programs.values())
    seen: set[str] = set()
    while todo:
        data = todo.pop().read_bytes()
        interp, needed = elf_needs(data)
        wanted = list(needed)
        if interp is not None:
            interps.add(interp)
            wanted.append(PurePosixPath(interp).name)
        for soname in wanted:
            if soname in seen:
                continue
            seen.add(soname)
            source = _find(soname, roots)
            if source is None:
                raise MissingLibrary(f"{soname} is in none of the unpacked packages")
            files[f"{LIB_DIR}/{soname}"] = source
            todo.append(source)
    placed = {f"{LIB_DIR}/{PurePosixPath(i).name}" for i in interps}
    links = sorted({i.lstrip("/") for i in interps} - placed)
    return files, links
