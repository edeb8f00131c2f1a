"""Normalising the filename of a TFTP read request into a root-relative path.

This is the pure half of path safety: it decides what name the client meant, and refuses names
that no boot firmware sends for a good reason. The adapter's resolver does the other half on the
filesystem (joining with each root, resolving symlinks, checking the result stays inside).

Rules, and the client behaviour behind each:
- Backslashes become slashes. Windows boot programs (bootmgr, wdsnbp) ask for `\\Boot\\BCD`-style
  names and some PXE ROMs copy a DHCP boot filename written with backslashes.
- Leading slashes are dropped: a request is always relative to the TFTP roots. Boot loaders that
  build names from an absolute prefix, and DHCP boot filenames written as `/undionly.kpxe`, mean
  "the file at the top of the TFTP root", which is how a chrooted tftp-hpa (`--secure`) serves
  them too.
- Empty components and `.` are dropped (`a//./b` is `a/b`), so the resolver and the logs see one
  spelling per file.
- A `..` component is refused, not resolved: no boot firmware needs one, and it is the classic
  way out of a TFTP root.
- NUL and other control characters are refused: a NUL would cut the name short at the operating
  system boundary, and the name is written to logs and shown in the UI.
- A name that is empty once normalised (`""`, `/`) is refused: it would name the root directory
  itself, and usually means a DHCP boot filename was left blank.
Case is preserved; a case-insensitive lookup for Windows-built trees is the resolver's business.
"""

from __future__ import annotations

__all__ = ["RequestPathError", "normalise_request_path"]


class RequestPathError(ValueError):
    """A requested filename that the server refuses before looking at any filesystem."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"refused path {filename[:200]!r}: {reason}")
        self.filename = filename
        self.reason = reason


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F


def normalise_request_path(filename: str) -> str:
    """The root-relative, slash-separated path a client asked for, or `RequestPathError`."""
    if "\0" in filename:
        raise RequestPathError(filename, "contains a NUL character")
    if any(_is_control(char) for char in filename):
        raise RequestPathError(filename, "contains a control character")
    parts = [part for part in filename.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise RequestPathError(filename, "contains a '..' component")
    if not parts:
        raise RequestPathError(filename, "names no file")
    return "/".join(parts)
