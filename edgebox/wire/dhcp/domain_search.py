"""Option 119, the domain search list (RFC 3397): RFC 1035 names with compression.

The option value (all instances joined, RFC 3396) is a run of names in RFC 1035 wire
form: length-prefixed labels ending in a zero byte, where a label byte with the top two
bits set starts a 14-bit pointer to an earlier name's suffix. RFC 3397 section 2 makes
pointer offsets relative to the start of the option data, not of the packet.

Decoding follows pointers; encoding writes every name in full (compression only saves a
few bytes and the option is rarely sent).
"""

from __future__ import annotations

from collections.abc import Iterable

_POINTER = 0xC0
_MAX_LABEL = 63
_MAX_NAME = 255  # octets in wire form, RFC 1035 section 2.3.4


def decode_domain_search(raw: bytes) -> tuple[str, ...]:
    """Names in order, without trailing dots; the root name is ``""``."""
    if not raw:
        raise ValueError("length 0, at least 1 byte is required")
    names: list[str] = []
    pos = 0
    while pos < len(raw):
        name, pos = _read_name(raw, pos)
        names.append(name)
    return tuple(names)


def _read_name(raw: bytes, start: int) -> tuple[str, int]:
    """Read the name at ``start``; return it and the offset just after it.

    A pointer must point before the start of the labels being read, so every jump goes
    strictly backwards and a loop of pointers cannot trap the decoder.
    """
    labels: list[str] = []
    pos, limit, size = start, start, 1
    resume: int | None = None  # where the next name starts, once a pointer was taken
    while True:
        if pos >= len(raw):
            raise ValueError(f"name at offset {start} runs past the end (len {len(raw)})")
        length = raw[pos]
        if length == 0:
            return ".".join(labels), pos + 1 if resume is None else resume
        if length & _POINTER == _POINTER:
            if pos + 1 >= len(raw):
                raise ValueError(f"pointer at offset {pos} is cut short")
            target = ((length & 0x3F) << 8) | raw[pos + 1]
            if target >= limit:
                raise ValueError(f"pointer at offset {pos} to {target} does not point back")
            if resume is None:
                resume = pos + 2
            pos = limit = target
            continue
        if length > _MAX_LABEL:
            raise ValueError(f"label length byte {length:#x} at offset {pos} is reserved")
        stop = pos + 1 + length
        if stop > len(raw):
            raise ValueError(f"label at offset {pos} runs past the end (len {len(raw)})")
        size += length + 1
        if size > _MAX_NAME:
            raise ValueError(f"name at offset {start} is longer than {_MAX_NAME} octets")
        labels.append(raw[pos + 1 : stop].decode("ascii"))
        pos = stop


def encode_domain_search(names: Iterable[str]) -> bytes:
    parts: list[bytes] = []
    for name in names:
        parts.append(_encode_name(name))
    if not parts:
        raise ValueError("a search list needs at least one name")
    return b"".join(parts)


def _encode_name(name: str) -> bytes:
    stripped = name.removesuffix(".")
    out = bytearray()
    for label in stripped.split(".") if stripped else ():
        data = label.encode("ascii")
        if not 1 <= len(data) <= _MAX_LABEL:
            raise ValueError(f"label {label!r} of {name!r} is {len(data)} octets, not 1..63")
        out.append(len(data))
        out += data
    out.append(0)
    if len(out) > _MAX_NAME:
        raise ValueError(f"name {name!r} is longer than {_MAX_NAME} octets")
    return bytes(out)


def format_domain_search(names: tuple[str, ...]) -> str:
    return ", ".join(name or "." for name in names)
