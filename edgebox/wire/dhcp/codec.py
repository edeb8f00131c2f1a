"""`parse_message` and `encode_message`: bytes <-> `DhcpMessage`.

Parsing is one ``struct`` unpack of the 240-byte fixed header (RFC 2131 figure 1 plus the
magic cookie), then one pass over the option TLVs that slices each value out as ``bytes``.
No option is decoded here; `OptionField` does that on demand. Every way the bytes can be
wrong raises `DhcpParseError` saying what and at which offset, and nothing else escapes.

Encoding packs the same header, writes the options in mapping order, splits values over
255 bytes into several instances (RFC 3396), appends End and pads to 300 bytes.
"""

from __future__ import annotations

import struct

from edgebox.wire.dhcp.errors import DhcpParseError
from edgebox.wire.dhcp.message import BOOTREPLY, BOOTREQUEST, DhcpMessage
from edgebox.wire.dhcp.options import END, OPTION_OVERLOAD, PAD

# op htype hlen hops | xid | secs flags | ciaddr yiaddr siaddr giaddr | chaddr sname file | cookie
_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s4s")
HEADER = _HEADER  # for reply templates, which pack the header themselves
HEADER_SIZE = _HEADER.size  # 240
MAGIC_COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 section 3: 99.130.83.99
# RFC 1542 section 3.4 (BOOTP's 300-byte minimum); some PXE ROMs and relays drop shorter.
MIN_PACKET_SIZE = 300

_SNAME = (44, 108)  # offsets of the sname field, for options overloaded into it
_FILE = (108, 236)
_OVERLOAD_FILE = 1
_OVERLOAD_SNAME = 2
_OPS = frozenset((BOOTREQUEST, BOOTREPLY))


def parse_message(data: bytes) -> DhcpMessage:
    """Decode one DHCP packet (a UDP payload); `DhcpParseError` for anything malformed."""
    if type(data) is not bytes:
        data = bytes(data)  # a bytearray or memoryview from a socket layer
    size = len(data)
    if size < HEADER_SIZE:
        raise DhcpParseError(
            f"packet is {size} bytes, shorter than the {HEADER_SIZE}-byte BOOTP header "
            "and magic cookie"
        )
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
     chaddr, sname, file, cookie) = _HEADER.unpack_from(data)  # fmt: skip
    if cookie != MAGIC_COOKIE:
        raise DhcpParseError(f"bad magic cookie {cookie.hex()} at offset 236, want 63825363")
    if op not in _OPS:
        raise DhcpParseError(f"op {op} at offset 0 is neither BOOTREQUEST (1) nor BOOTREPLY (2)")
    if hlen > 16:
        raise DhcpParseError(f"hlen {hlen} at offset 2 is larger than the 16-byte chaddr field")
    options: dict[int, bytes] = {}
    _scan_options(data, HEADER_SIZE, size, options)
    if OPTION_OVERLOAD in options:
        overload = _overload_flags(options.pop(OPTION_OVERLOAD))
        # RFC 3396 section 5, the "aggregate option buffer": options, then file, then sname.
        if overload & _OVERLOAD_FILE:
            _scan_options(data, *_FILE, options)
            file = b""
        if overload & _OVERLOAD_SNAME:
            _scan_options(data, *_SNAME, options)
            sname = b""
        options.pop(OPTION_OVERLOAD, None)  # 52 inside sname/file is not allowed; ignore it
    return DhcpMessage(
        op=op,
        htype=htype,
        hlen=hlen,
        hops=hops,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=ciaddr,
        yiaddr=yiaddr,
        siaddr=siaddr,
        giaddr=giaddr,
        chaddr=chaddr[:hlen],
        sname=sname.split(b"\0", 1)[0] if sname[:1] != b"\0" else b"",  # empty: most packets
        file=file.split(b"\0", 1)[0] if file[:1] != b"\0" else b"",
        options=options,
    )


def _scan_options(data: bytes, pos: int, end: int, options: dict[int, bytes]) -> None:
    """Add the TLVs in ``data[pos:end]`` to ``options``, stopping at End.

    A missing End is tolerated (the region just runs out), as most clients and servers do.
    A code seen again is appended to what came before: RFC 3396 long options.
    """
    while pos < end:
        code = data[pos]
        if code == PAD:
            pos += 1
            continue
        if code == END:
            return
        if pos + 1 >= end:
            raise DhcpParseError(
                f"option {code} at offset {pos}: no length byte before the end of "
                f"{_region(data, end)}"
            )
        start = pos + 2
        stop = start + data[pos + 1]
        if stop > end:
            raise DhcpParseError(
                f"option {code} at offset {pos}: length {data[pos + 1]} runs past end of "
                f"{_region(data, end)}"
            )
        if code in options:
            options[code] += data[start:stop]
        else:
            options[code] = data[start:stop]
        pos = stop


def _region(data: bytes, end: int) -> str:
    if end == _SNAME[1]:
        return "sname field (overloaded, ends at offset 108)"
    if end == _FILE[1]:
        return "file field (overloaded, ends at offset 236)"
    return f"packet (len {len(data)})"


def _overload_flags(raw: bytes) -> int:
    if len(raw) != 1 or not 1 <= raw[0] <= 3:
        raise DhcpParseError(
            f"malformed DHCP option 52 (option overload): {raw.hex() or 'empty'} is not "
            "one byte of 1 (file), 2 (sname) or 3 (both)"
        )
    return raw[0]


def encode_message(msg: DhcpMessage) -> bytes:
    """The packet for ``msg``; `ValueError` if a field or option cannot be encoded.

    Options go out in mapping order. RFC 2131 asks for no order, but servers customarily
    put 53 first, which costs nothing and spares minimal firmware parsers a surprise.
    Option 52 (overload) is never written: everything fits in the options field.
    """
    chaddr, hlen = msg.chaddr, msg.hlen
    if len(chaddr) != hlen or hlen > 16:
        raise ValueError(f"chaddr is {len(chaddr)} bytes but hlen is {hlen} (at most 16)")
    for name, value, limit in (("sname", msg.sname, 64), ("file", msg.file, 128)):
        if len(value) > limit or b"\0" in value:
            raise ValueError(f"{name} must be at most {limit} bytes without NUL, got {value!r}")
    try:
        header = _HEADER.pack(
            msg.op, msg.htype, hlen, msg.hops, msg.xid, msg.secs, msg.flags,
            msg.ciaddr, msg.yiaddr, msg.siaddr, msg.giaddr,
            chaddr, msg.sname, msg.file, MAGIC_COOKIE,
        )  # fmt: skip
    except struct.error as exc:
        raise ValueError(f"cannot encode DHCP header of xid {msg.xid!r}: {exc}") from exc
    parts = [header]
    for code, value in msg.options.items():
        parts.append(encode_option(code, value))
    parts.append(b"\xff")
    packet = b"".join(parts)
    if len(packet) < MIN_PACKET_SIZE:
        packet += bytes(MIN_PACKET_SIZE - len(packet))
    return packet


def encode_option(code: int, value: bytes) -> bytes:
    """One option as TLVs: a value over 255 bytes becomes several (RFC 3396), joined again
    on decode. `ValueError` for Pad, End and Overload, which are not options with a value."""
    if not PAD < code < END or code == OPTION_OVERLOAD:
        raise ValueError(f"option code {code} cannot be encoded as an option")
    if len(value) <= 255:
        return bytes((code, len(value))) + value
    return b"".join(
        bytes((code, len(piece))) + piece
        for piece in (value[chunk : chunk + 255] for chunk in range(0, len(value), 255))
    )
