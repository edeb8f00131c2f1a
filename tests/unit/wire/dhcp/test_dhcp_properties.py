"""Property tests: fuzzing, round trips, and scapy as an independent oracle.

scapy is imported here only (the codec never imports it): it is slow but mature, so where
both read or write the same packet they must agree.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP, DHCPRevOptions
from scapy.packet import Raw

from edgebox.wire.dhcp import (
    BOOTFILE_NAME,
    BROADCAST_ADDRESS,
    CLASSLESS_ROUTES,
    CLIENT_ARCH,
    CLIENT_ID,
    CLIENT_MACHINE_ID,
    CLIENT_NDI,
    DNS_SERVERS,
    DOMAIN_NAME,
    DOMAIN_SEARCH,
    HOSTNAME,
    IPXE_ENCAP,
    LEASE_TIME,
    MAX_MESSAGE_SIZE,
    MESSAGE_TYPE,
    OPTION_FIELDS,
    PARAMETER_REQUEST_LIST,
    REBINDING_TIME,
    RELAY_AGENT_INFO,
    RENEWAL_TIME,
    REQUESTED_IP,
    ROUTERS,
    SERVER_ID,
    SUBNET_MASK,
    TFTP_SERVER_NAME,
    USER_CLASS,
    VENDOR_CLASS_ID,
    VENDOR_SPECIFIC,
    ClasslessRoute,
    ClientId,
    ClientMachineId,
    ClientNdi,
    DhcpMessage,
    DhcpParseError,
    MessageType,
    OptionField,
    encode_message,
    format_ipv4,
    parse_message,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIXTURES = Path(__file__).parent / "fixtures"

# -- strategies -----------------------------------------------------------------------------------

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=90)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)


def _route(width: int, dest: int, router: int) -> ClasslessRoute:
    mask = (0xFFFFFFFF << (32 - width)) & 0xFFFFFFFF
    return ClasslessRoute(dest & mask, width, router)


def _tuples(elements: st.SearchStrategy[Any], max_size: int = 4) -> st.SearchStrategy[Any]:
    return st.lists(elements, min_size=1, max_size=max_size).map(tuple)


def _subs(codes: st.SearchStrategy[int]) -> st.SearchStrategy[dict[int, bytes]]:
    return st.dictionaries(codes, st.binary(max_size=12), max_size=4)


VALUES: dict[OptionField[Any], st.SearchStrategy[Any]] = {
    SUBNET_MASK: u32,
    ROUTERS: _tuples(u32),
    DNS_SERVERS: _tuples(u32),
    HOSTNAME: texts,
    DOMAIN_NAME: texts,
    BROADCAST_ADDRESS: u32,
    VENDOR_SPECIFIC: _subs(st.integers(1, 254)),
    REQUESTED_IP: u32,
    LEASE_TIME: u32,
    MESSAGE_TYPE: st.sampled_from(MessageType),
    SERVER_ID: u32,
    PARAMETER_REQUEST_LIST: _tuples(st.integers(1, 254), 30),
    MAX_MESSAGE_SIZE: u16,
    RENEWAL_TIME: u32,
    REBINDING_TIME: u32,
    VENDOR_CLASS_ID: texts,
    CLIENT_ID: st.builds(ClientId, u8, st.binary(min_size=1, max_size=20)),
    TFTP_SERVER_NAME: texts,
    BOOTFILE_NAME: texts,
    USER_CLASS: _tuples(st.binary(min_size=1, max_size=12), 3),
    RELAY_AGENT_INFO: _subs(u8),
    CLIENT_ARCH: _tuples(u16, 3),
    CLIENT_NDI: st.builds(ClientNdi, u8, u8, u8),
    CLIENT_MACHINE_ID: st.builds(ClientMachineId, u8, st.binary(min_size=16, max_size=16)),
    DOMAIN_SEARCH: _tuples(domains | st.just(""), 3),
    CLASSLESS_ROUTES: _tuples(st.builds(_route, st.integers(0, 32), u32, u32)),
    IPXE_ENCAP: _subs(st.integers(1, 254)),
}

typed_options = st.sampled_from(list(VALUES)).flatmap(
    lambda field: VALUES[field].map(lambda value: (field, value))
)


@st.composite
def messages(
    draw: st.DrawFn, *, long_options: bool = True, unknown_codes: range = range(1, 255)
) -> tuple[DhcpMessage, list[tuple[OptionField[Any], Any]]]:
    """A message and the typed (field, value) pairs that went into its options."""
    typed = draw(st.lists(typed_options, max_size=8, unique_by=lambda item: item[0].code))
    raw_codes = st.sampled_from([c for c in unknown_codes if c != 52 and c not in OPTION_FIELDS])
    raw_value = st.binary(max_size=600 if long_options else 40)
    items = [(field.code, field.encode(value)) for field, value in typed]
    items += draw(st.lists(st.tuples(raw_codes, raw_value), max_size=3, unique_by=lambda i: i[0]))
    if not long_options:
        items = [(code, value) for code, value in items if len(value) <= 255]
        typed = [(f, v) for f, v in typed if len(f.encode(v)) <= 255]
    hlen = draw(st.integers(0, 16))
    name = st.binary(max_size=64).map(lambda b: b.replace(b"\0", b"x"))
    msg = DhcpMessage(
        op=draw(st.sampled_from([1, 2])),
        htype=draw(u8),
        hlen=hlen,
        hops=draw(u8),
        xid=draw(u32),
        secs=draw(u16),
        flags=draw(u16),
        ciaddr=draw(u32),
        yiaddr=draw(u32),
        siaddr=draw(u32),
        giaddr=draw(u32),
        chaddr=draw(st.binary(min_size=hlen, max_size=hlen)),
        sname=draw(name),
        file=draw(name),
        options=dict(draw(st.permutations(items))),
    )
    return msg, typed


# -- round trips ----------------------------------------------------------------------------------


@FAST
@given(typed_options)
def test_option_value_round_trip(item: tuple[OptionField[Any], Any]) -> None:
    field, value = item
    assert field.decode(field.encode(value)) == value


@FAST
@given(messages())
def test_message_round_trip(generated: tuple[DhcpMessage, list[Any]]) -> None:
    msg, typed = generated
    data = encode_message(msg)
    assert len(data) >= 300
    parsed = parse_message(data)
    assert parsed == msg
    for field, value in typed:
        assert parsed.get(field) == value


# -- fuzzing: parse returns or raises DhcpParseError, and nothing else ------------------------


def _check_parse(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except DhcpParseError:
        return
    msg.describe()  # never raises
    for field in OPTION_FIELDS.values():
        with contextlib.suppress(DhcpParseError):
            msg.get(field)


HEADER = bytes(236) + b"\x63\x82\x53\x63"


@FAST
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_parse(data)


@FAST
@given(st.sampled_from([b"", b"\x34\x01\x01", b"\x34\x01\x03"]), st.binary(max_size=400))
def test_fuzz_options_area(prefix: bytes, tail: bytes) -> None:
    # A valid header and cookie, so the fuzzing reaches the option scanner and decoders;
    # a leading option 52 sends the scanner into the random sname/file bytes too.
    header = bytes([1, 1, 6, 0]) + tail[:232].ljust(232, b"\0") + HEADER[236:]
    _check_parse(header + prefix + tail[232:])


_FIXTURE_PACKETS = [
    bytes.fromhex("".join(line.split("#")[0] for line in p.read_text().splitlines()))
    for p in sorted(FIXTURES.glob("*.hex"))
]


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        data = bytearray(draw(st.sampled_from(_FIXTURE_PACKETS)))
    else:
        data = bytearray(encode_message(draw(messages())[0]))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[pos] = draw(u8)
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data)


@FAST
@given(mutated_packets())
def test_fuzz_mutated_valid_packets(data: bytes) -> None:
    _check_parse(data)


# -- scapy as oracle ------------------------------------------------------------------------------


def _scapy_options(packet: Any) -> dict[int, tuple[Any, ...]]:
    out: dict[int, tuple[Any, ...]] = {}
    for item in packet[DHCP].options:
        if isinstance(item, str):  # "end", "pad"
            continue
        name, *values = item
        code = name if isinstance(name, int) else DHCPRevOptions[name][0]
        assert code not in out, f"option {code} twice"
        out[code] = tuple(values)
    return out


def _scapy_route(route: ClasslessRoute) -> str:
    return f"{format_ipv4(route.destination)}/{route.prefix_len}:{format_ipv4(route.router)}"


def _as_scapy_shows(code: int, raw: bytes) -> tuple[Any, ...]:
    """How scapy 2.8 presents option ``code`` with value ``raw``."""
    if code in (SUBNET_MASK.code, BROADCAST_ADDRESS.code, REQUESTED_IP.code, SERVER_ID.code):
        return (format_ipv4(int.from_bytes(raw, "big")),)
    if code in (ROUTERS.code, DNS_SERVERS.code):
        return tuple(format_ipv4(a) for a in struct.unpack(f"!{len(raw) // 4}I", raw))
    if code in (LEASE_TIME.code, RENEWAL_TIME.code, REBINDING_TIME.code, MAX_MESSAGE_SIZE.code):
        return (int.from_bytes(raw, "big"),)
    if code == MESSAGE_TYPE.code:
        return (raw[0],)
    if code == PARAMETER_REQUEST_LIST.code:
        return (list(raw),)
    if code == CLASSLESS_ROUTES.code:
        return ([_scapy_route(route) for route in CLASSLESS_ROUTES.decode(raw)],)
    return (raw,)


@FAST
@given(messages(long_options=False, unknown_codes=range(214, 255)))
def test_scapy_decodes_our_encoding(generated: tuple[DhcpMessage, list[Any]]) -> None:
    msg, _ = generated
    theirs = BOOTP(encode_message(msg))
    assert (theirs.op, theirs.htype, theirs.hlen, theirs.hops) == (
        msg.op,
        msg.htype,
        msg.hlen,
        msg.hops,
    )
    assert (theirs.xid, theirs.secs, int(theirs.flags)) == (msg.xid, msg.secs, msg.flags)
    for field in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
        assert getattr(theirs, field) == format_ipv4(getattr(msg, field))
    assert theirs.chaddr[: msg.hlen] == msg.chaddr
    assert theirs.sname.rstrip(b"\0") == msg.sname.rstrip(b"\0")
    assert theirs.file.rstrip(b"\0") == msg.file.rstrip(b"\0")
    assert DHCP in theirs
    assert Raw not in theirs  # scapy found nothing left over after our End and padding
    options = _scapy_options(theirs)
    assert list(options) == list(msg.options)
    for code, raw in msg.options.items():
        assert options[code] == _as_scapy_shows(code, raw), f"option {code}"
    message_type = options.get(53)
    assert (message_type[0] if message_type else None) == msg.message_type


@FAST
@given(
    op=st.sampled_from([1, 2]),
    xid=u32,
    secs=u16,
    flags=st.sampled_from([0, 0x8000]),
    addrs=st.tuples(u32, u32, u32, u32),
    mac=st.binary(min_size=6, max_size=6),
    kind=st.sampled_from(MessageType),
    routers=_tuples(u32),
    lease=u32,
    prl=_tuples(st.integers(1, 254), 20),
    hostname=st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True),
    arch=u16,
    routes=_tuples(st.builds(_route, st.integers(0, 32), u32, u32), 3),
    file=st.from_regex(r"[a-z0-9./]{0,40}", fullmatch=True),
)
def test_scapy_built_packets_parse_in_ours(
    op: int,
    xid: int,
    secs: int,
    flags: int,
    addrs: tuple[int, int, int, int],
    mac: bytes,
    kind: MessageType,
    routers: tuple[int, ...],
    lease: int,
    prl: tuple[int, ...],
    hostname: str,
    arch: int,
    routes: tuple[ClasslessRoute, ...],
    file: str,
) -> None:
    ciaddr, yiaddr, siaddr, giaddr = map(format_ipv4, addrs)
    packet = BOOTP(
        op=op, xid=xid, secs=secs, flags=flags, ciaddr=ciaddr, yiaddr=yiaddr, siaddr=siaddr,
        giaddr=giaddr, chaddr=mac, file=file.encode(),
    ) / DHCP(
        options=[
            ("message-type", int(kind)),
            ("router", *map(format_ipv4, routers)),
            ("lease_time", lease),
            ("param_req_list", list(prl)),
            ("hostname", hostname.encode()),
            ("client_id", b"\x01" + mac),
            ("pxe_client_architecture", struct.pack("!H", arch)),
            ("user_class", b"iPXE"),
            ("classless_static_routes", *map(_scapy_route, routes)),
            "end",
        ]
    )  # fmt: skip
    msg = parse_message(bytes(packet))
    assert (msg.op, msg.xid, msg.secs, msg.flags) == (op, xid, secs, flags)
    assert (msg.ciaddr, msg.yiaddr, msg.siaddr, msg.giaddr) == addrs
    assert msg.chaddr == mac
    assert msg.file == file.encode()
    assert msg.message_type == kind
    assert msg.get(ROUTERS) == routers
    assert msg.get(LEASE_TIME) == lease
    assert msg.get(PARAMETER_REQUEST_LIST) == prl
    assert msg.get(HOSTNAME) == hostname
    assert msg.get(CLIENT_ID) == ClientId(1, mac)
    assert msg.get(CLIENT_ARCH) == (arch,)
    assert msg.get(USER_CLASS) == (b"iPXE",)
    assert msg.get(CLASSLESS_ROUTES) == routes
    assert list(msg.options) == [53, 3, 51, 55, 12, 61, 93, 77, 121]
