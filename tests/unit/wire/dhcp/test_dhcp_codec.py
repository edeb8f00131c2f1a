"""parse_message / encode_message: header fields, option framing, RFC 3396, overload, errors.

Packets are built here with plain struct, independently of the encoder under test.
"""

from __future__ import annotations

import dataclasses
import re
import struct

import pytest

from edgebox.wire.dhcp import (
    MAGIC_COOKIE,
    DhcpMessage,
    DhcpParseError,
    MessageType,
    encode_message,
    parse_message,
)

MAC = bytes.fromhex("525400123456")
HEADER = struct.Struct("!BBBBIHHIIII16s64s128s4s")


def raw_packet(
    options: bytes = b"\x35\x01\x01\xff",
    *,
    op: int = 1,
    htype: int = 1,
    hlen: int = 6,
    hops: int = 0,
    xid: int = 0xDEADBEEF,
    secs: int = 0,
    flags: int = 0,
    addrs: tuple[int, int, int, int] = (0, 0, 0, 0),
    chaddr: bytes = MAC,
    sname: bytes = b"",
    file: bytes = b"",
    cookie: bytes = MAGIC_COOKIE,
) -> bytes:
    head = HEADER.pack(op, htype, hlen, hops, xid, secs, flags, *addrs, chaddr, sname, file, cookie)
    return head + options


def message(**fields: object) -> DhcpMessage:
    base: dict[str, object] = {"op": 1, "xid": 0x01020304, "chaddr": MAC}
    base.update(fields)
    return DhcpMessage(**base)  # type: ignore[arg-type]


# -- header --------------------------------------------------------------------------------------


def test_header_fields_are_decoded() -> None:
    data = raw_packet(
        op=2,
        htype=1,
        hlen=6,
        hops=3,
        xid=0xCAFEF00D,
        secs=7,
        flags=0x8000,
        addrs=(0x0A000001, 0x0A000002, 0x0A000003, 0x0A000004),
        chaddr=MAC + b"\xaa" * 10,  # bytes beyond hlen are not part of the address
        sname=b"boot-server\0junk",
        file=b"undionly.kpxe\0",
    )
    msg = parse_message(data)
    assert (msg.op, msg.htype, msg.hlen, msg.hops) == (2, 1, 6, 3)
    assert (msg.xid, msg.secs, msg.flags) == (0xCAFEF00D, 7, 0x8000)
    assert (msg.ciaddr, msg.yiaddr, msg.siaddr, msg.giaddr) == (
        0x0A000001,
        0x0A000002,
        0x0A000003,
        0x0A000004,
    )
    assert msg.chaddr == MAC
    assert msg.mac == "52:54:00:12:34:56"
    assert msg.broadcast
    assert msg.sname == b"boot-server"
    assert msg.file == b"undionly.kpxe"
    assert msg.message_type is MessageType.DISCOVER
    assert dict(msg.options) == {53: b"\x01"}


def test_hlen_zero_gives_empty_chaddr() -> None:
    msg = parse_message(raw_packet(hlen=0, chaddr=b""))
    assert msg.chaddr == b""
    assert msg.mac == ""


def test_encode_writes_the_exact_header() -> None:
    msg = message(
        op=2,
        hops=1,
        xid=0xCAFEF00D,
        secs=9,
        flags=0x8000,
        ciaddr=1,
        yiaddr=2,
        siaddr=3,
        giaddr=4,
        sname=b"srv",
        file=b"snponly.efi",
        options={53: b"\x02"},
    )
    expected = raw_packet(
        b"\x35\x01\x02\xff",
        op=2,
        hops=1,
        xid=0xCAFEF00D,
        secs=9,
        flags=0x8000,
        addrs=(1, 2, 3, 4),
        sname=b"srv",
        file=b"snponly.efi",
    )
    assert encode_message(msg) == expected.ljust(300, b"\0")


def test_encode_pads_to_300_bytes() -> None:
    data = encode_message(message(options={53: b"\x01"}))
    assert len(data) == 300
    assert data[240:244] == b"\x35\x01\x01\xff"
    assert data[244:] == bytes(56)


def test_encode_does_not_pad_a_long_packet() -> None:
    data = encode_message(message(options={43: bytes(200)}))
    assert len(data) == 240 + 2 + 200 + 1
    assert data[-1] == 0xFF


def test_encode_writes_options_in_mapping_order_and_empty_values() -> None:
    data = encode_message(message(options={60: b"PXEClient", 53: b"\x01", 80: b""}))
    assert data[240:].rstrip(b"\0") == b"\x3c\x09PXEClient\x35\x01\x01\x50\x00\xff"


def test_round_trip_keeps_everything() -> None:
    msg = message(options={53: b"\x05", 1: b"\xff\xff\xff\x00", 224: b"x"}, sname=b"s" * 64)
    assert parse_message(encode_message(msg)) == msg


def test_bytearray_and_memoryview_are_accepted() -> None:
    data = raw_packet()
    assert parse_message(bytearray(data)) == parse_message(data)  # type: ignore[arg-type]
    assert parse_message(memoryview(data)) == parse_message(data)  # type: ignore[arg-type]
    assert type(parse_message(bytearray(data)).options[53]) is bytes  # type: ignore[arg-type]


# -- option framing ----------------------------------------------------------------------------


def test_pad_is_skipped_and_end_stops_the_scan() -> None:
    msg = parse_message(raw_packet(b"\x00\x00\x35\x01\x03\x00\xff\x0c\x03abc"))
    assert dict(msg.options) == {53: b"\x03"}


def test_missing_end_is_tolerated() -> None:
    msg = parse_message(raw_packet(b"\x35\x01\x01\x0c\x02hi"))
    assert dict(msg.options) == {53: b"\x01", 12: b"hi"}


def test_no_options_at_all() -> None:
    msg = parse_message(raw_packet(b""))
    assert dict(msg.options) == {}
    assert msg.message_type is None  # plain BOOTP


def test_option_order_is_kept() -> None:
    msg = parse_message(raw_packet(b"\x3c\x01a\x35\x01\x01\x0c\x01b\xff"))
    assert list(msg.options) == [60, 53, 12]


# -- RFC 3396 long options ----------------------------------------------------------------------


def test_repeated_option_instances_are_joined() -> None:
    msg = parse_message(raw_packet(b"\x77\x03abc\x35\x01\x01\x77\x02de\xff"))
    assert msg.options[119] == b"abcde"
    assert list(msg.options) == [119, 53]  # position of the first instance


@pytest.mark.parametrize(
    ("size", "pieces"), [(255, [255]), (256, [255, 1]), (510, [255, 255]), (600, [255, 255, 90])]
)
def test_long_option_is_split_on_encode(size: int, pieces: list[int]) -> None:
    value = bytes(i % 251 for i in range(size))
    data = encode_message(message(options={43: value}))
    pos, seen = 240, []
    while data[pos] != 0xFF:
        assert data[pos] == 43
        seen.append(data[pos + 1])
        pos += 2 + data[pos + 1]
    assert seen == pieces
    assert parse_message(data).options[43] == value


# -- option overload (52) -----------------------------------------------------------------------


def test_overload_file() -> None:
    data = raw_packet(b"\x34\x01\x01\x35\x01\x02\xff", file=b"\x43\x0bsnponly.efi\xff")
    msg = parse_message(data)
    assert dict(msg.options) == {53: b"\x02", 67: b"snponly.efi"}
    assert msg.file == b""


def test_overload_sname() -> None:
    data = raw_packet(b"\x34\x01\x02\xff", sname=b"\x42\x04tftp\xff", file=b"pxelinux.0")
    msg = parse_message(data)
    assert dict(msg.options) == {66: b"tftp"}
    assert msg.sname == b""
    assert msg.file == b"pxelinux.0"


def test_overload_both_joins_options_then_file_then_sname() -> None:
    data = raw_packet(
        b"\x34\x01\x03\x0c\x01a\xff", file=b"\x0c\x01b\xff", sname=b"\x0c\x01c\x00\x00\xff"
    )
    msg = parse_message(data)
    assert msg.options[12] == b"abc"
    assert (msg.sname, msg.file) == (b"", b"")
    assert 52 not in msg.options


def test_overload_option_inside_the_file_is_ignored() -> None:
    data = raw_packet(b"\x34\x01\x01\xff", file=b"\x34\x01\x02\x0c\x01x\xff", sname=b"name")
    msg = parse_message(data)
    assert dict(msg.options) == {12: b"x"}
    assert msg.sname == b"name"


@pytest.mark.parametrize("value", [b"", b"\x00", b"\x04", b"\x01\x01"])
def test_malformed_overload_option(value: bytes) -> None:
    data = raw_packet(b"\x34" + bytes((len(value),)) + value + b"\xff")
    with pytest.raises(DhcpParseError, match=r"option 52 \(option overload\)"):
        parse_message(data)


def test_overrun_in_overloaded_file_names_the_field() -> None:
    data = raw_packet(b"\x34\x01\x01\xff", file=b"\x00" * 120 + b"\x0c\x09abcdef")
    with pytest.raises(
        DhcpParseError,
        match=re.escape("option 12 at offset 228: length 9 runs past end of file field"),
    ):
        parse_message(data)


def test_encode_refuses_option_overload() -> None:
    with pytest.raises(ValueError, match="option code 52"):
        encode_message(message(options={52: b"\x01"}))


# -- parse errors ---------------------------------------------------------------------------------


def test_error_message_for_an_option_running_past_the_end() -> None:
    # 22 bytes of options before it put option 93 at offset 262; the packet is 265 bytes.
    data = raw_packet(b"\x35\x01\x01" + b"\x3c\x11" + b"PXEClient:Arch:00" + b"\x5d\x03\x00")
    assert len(data) == 265
    with pytest.raises(DhcpParseError) as info:
        parse_message(data)
    assert str(info.value) == (
        "option 93 at offset 262: length 3 runs past end of packet (len 265)"
    )


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"", r"packet is 0 bytes, shorter than the 240-byte"),
        (raw_packet(b"")[:239], r"packet is 239 bytes"),
        (raw_packet(cookie=b"\x63\x82\x53\x64"), r"bad magic cookie 63825364 at offset 236"),
        (raw_packet(op=3), r"op 3 at offset 0 is neither"),
        (raw_packet(op=0), r"op 0 at offset 0"),
        (raw_packet(hlen=17), r"hlen 17 at offset 2 is larger than the 16-byte chaddr"),
        (raw_packet(b"\x35"), r"option 53 at offset 240: no length byte before the end of packet"),
        (raw_packet(b"\x35\x02\x01"), r"option 53 at offset 240: length 2 runs past end"),
    ],
    ids=["empty", "short", "cookie", "op3", "op0", "hlen", "no-length", "overrun"],
)
def test_parse_errors(data: bytes, pattern: str) -> None:
    with pytest.raises(DhcpParseError, match=pattern):
        parse_message(data)


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(DhcpParseError, ValueError)


# -- encode errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"hlen": 7}, "chaddr is 6 bytes but hlen is 7"),
        ({"chaddr": bytes(17), "hlen": 17}, "hlen is 17"),
        ({"sname": b"x" * 65}, "sname must be at most 64 bytes"),
        ({"file": b"a\0b"}, "file must be at most 128 bytes without NUL"),
        ({"xid": 2**32}, "cannot encode DHCP header"),
        ({"op": -1}, "cannot encode DHCP header"),
        ({"options": {0: b""}}, "option code 0"),
        ({"options": {255: b""}}, "option code 255"),
        ({"options": {256: b""}}, "option code 256"),
    ],
)
def test_encode_errors(fields: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        encode_message(message(**fields))


def test_message_helpers() -> None:
    msg = message(flags=0)
    assert not msg.broadcast
    assert msg.message_type is None
    assert dataclasses.replace(msg, xid=5).xid == 5
