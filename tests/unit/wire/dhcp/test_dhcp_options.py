"""Typed option fields: bytes in -> value out, value -> bytes, and every malformed case."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest

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
    IPXE_NO_PXEDHCP,
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
    format_ipv4,
    parse_ipv4,
)

GUID = bytes.fromhex("44454c4c3400105a8051b4c04f4e3932")

# (field, wire bytes, value): decode(bytes) == value and encode(value) == bytes.
EXACT: list[tuple[OptionField[Any], bytes, object]] = [
    (SUBNET_MASK, b"\xff\xff\xff\x00", 0xFFFFFF00),
    (ROUTERS, b"\x0a\x00\x00\x01", (0x0A000001,)),
    (ROUTERS, b"\x0a\x00\x00\x01\x0a\x00\x00\x02", (0x0A000001, 0x0A000002)),
    (DNS_SERVERS, b"\x01\x01\x01\x01\x08\x08\x08\x08", (0x01010101, 0x08080808)),
    (HOSTNAME, b"node-017", "node-017"),
    (DOMAIN_NAME, b"site.example", "site.example"),
    (BROADCAST_ADDRESS, b"\x0a\x00\x00\xff", 0x0A0000FF),
    (VENDOR_SPECIFIC, b"\x06\x01\x08\xff", {6: b"\x08"}),
    (VENDOR_SPECIFIC, b"\x09\x05\x80\x00\x02ab\x0a\x01\x00\xff", {9: b"\x80\x00\x02ab", 10: b"\0"}),
    (REQUESTED_IP, b"\x0a\x14\x00\x39", 0x0A140039),
    (LEASE_TIME, b"\x00\x00\x0e\x10", 3600),
    (LEASE_TIME, b"\xff\xff\xff\xff", 0xFFFFFFFF),  # infinite
    (MESSAGE_TYPE, b"\x01", MessageType.DISCOVER),
    (MESSAGE_TYPE, b"\x08", MessageType.INFORM),
    (SERVER_ID, b"\x0a\x00\x00\x02", 0x0A000002),
    (PARAMETER_REQUEST_LIST, b"\x01\x03\x06\x2b", (1, 3, 6, 43)),
    (MAX_MESSAGE_SIZE, b"\x05\xc0", 1472),
    (RENEWAL_TIME, b"\x00\x00\x07\x08", 1800),
    (REBINDING_TIME, b"\x00\x00\x0c\x4e", 3150),
    (VENDOR_CLASS_ID, b"PXEClient:Arch:00000:UNDI:002001", "PXEClient:Arch:00000:UNDI:002001"),
    (CLIENT_ID, b"\x01\x52\x54\x00\x12\x34\x56", ClientId(1, bytes.fromhex("525400123456"))),
    (TFTP_SERVER_NAME, b"10.0.0.2", "10.0.0.2"),
    (BOOTFILE_NAME, b"http://10.0.0.2:5248/ipxe.efi", "http://10.0.0.2:5248/ipxe.efi"),
    (USER_CLASS, b"\x04iPXE", (b"iPXE",)),
    (USER_CLASS, b"\x01a\x02bc", (b"a", b"bc")),
    (RELAY_AGENT_INFO, b"\x01\x04eth0\x02\x02\xab\xcd", {1: b"eth0", 2: b"\xab\xcd"}),
    (CLIENT_ARCH, b"\x00\x00", (0,)),
    (CLIENT_ARCH, b"\x00\x07\x00\x10", (7, 16)),
    (CLIENT_NDI, b"\x01\x02\x01", ClientNdi(1, 2, 1)),
    (CLIENT_MACHINE_ID, b"\x00" + GUID, ClientMachineId(0, GUID)),
    (DOMAIN_SEARCH, b"\x03eng\x07example\x03com\x00", ("eng.example.com",)),
    (DOMAIN_SEARCH, b"\x00", ("",)),
    (CLASSLESS_ROUTES, b"\x00\x0a\x00\x00\x01", (ClasslessRoute(0, 0, 0x0A000001),)),
    (IPXE_ENCAP, b"\xb0\x01\x01", {IPXE_NO_PXEDHCP: b"\x01"}),
    (IPXE_ENCAP, b"\x13\x01\x01\xeb\x03\x01\x15\x00", {0x13: b"\x01", 0xEB: b"\x01\x15\x00"}),
]


@pytest.mark.parametrize(("field", "raw", "value"), EXACT, ids=lambda x: getattr(x, "name", None))
def test_decode_and_encode(field: OptionField[Any], raw: bytes, value: object) -> None:
    assert field.decode(raw) == value
    assert field.encode(value) == raw
    assert field.item(value) == (field.code, raw)


def test_every_required_option_has_a_field() -> None:
    required = {1, 3, 6, 12, 15, 28, 43, 50, 51, 53, 54, 55, 57, 58, 59, 60, 61, 66, 67, 77, 82}
    required |= {93, 94, 97, 119, 121, 175}
    assert required <= set(OPTION_FIELDS)
    assert {f.code for f, _, _ in EXACT} == required


# -- quirks and structure --------------------------------------------------------------------


def test_user_class_bare_string_from_ipxe() -> None:
    # iPXE sends 77 = "iPXE" with no RFC 3004 length prefix; "i" (0x69) would claim 105 bytes.
    assert USER_CLASS.decode(b"iPXE") == (b"iPXE",)
    assert USER_CLASS.decode(b"gPXE") == (b"gPXE",)


def test_user_class_falls_back_on_a_zero_length_instance() -> None:
    assert USER_CLASS.decode(b"\x02ab\x00") == (b"\x02ab\x00",)


def test_text_options_drop_trailing_nuls() -> None:
    # Some firmware NUL-terminates string options.
    assert HOSTNAME.decode(b"node-01\0") == "node-01"
    assert VENDOR_CLASS_ID.decode(b"MSFT 5.0\0\0") == "MSFT 5.0"


def test_vendor_specific_skips_pad_and_stops_at_end() -> None:
    assert VENDOR_SPECIFIC.decode(b"\x00\x06\x01\x08\xff\x09\x01x") == {6: b"\x08"}


def test_suboptions_repeated_are_joined() -> None:
    assert IPXE_ENCAP.decode(b"\x01\x01a\x01\x01b") == {1: b"ab"}


def test_relay_agent_info_treats_0_and_255_as_ordinary_codes() -> None:
    assert RELAY_AGENT_INFO.decode(b"\x00\x01a\xff\x01b") == {0: b"a", 255: b"b"}


def test_client_machine_id_uuid_byte_orders() -> None:
    machine_id = CLIENT_MACHINE_ID.decode(b"\x00" + GUID)
    assert machine_id.uuid == UUID("44454c4c-3400-105a-8051-b4c04f4e3932")
    assert machine_id.smbios_uuid == UUID("4c4c4544-0034-5a10-8051-b4c04f4e3932")


def test_domain_search_with_compression() -> None:
    # RFC 3397 section 3's example: "eng.apple.com." then "marketing.apple.com.".
    raw = b"\x03eng\x05apple\x03com\x00" + b"\x09marketing\xc0\x04"
    assert DOMAIN_SEARCH.decode(raw) == ("eng.apple.com", "marketing.apple.com")


def test_domain_search_pointer_to_a_pointer() -> None:
    raw = b"\x01a\x03com\x00" + b"\x01b\xc0\x02" + b"\x01c\xc0\x07"
    assert DOMAIN_SEARCH.decode(raw) == ("a.com", "b.com", "c.b.com")


def test_domain_search_encodes_uncompressed() -> None:
    names = ("eng.apple.com", "marketing.apple.com.")
    raw = DOMAIN_SEARCH.encode(names)
    assert raw == b"\x03eng\x05apple\x03com\x00\x09marketing\x05apple\x03com\x00"
    assert DOMAIN_SEARCH.decode(raw) == ("eng.apple.com", "marketing.apple.com")


def test_classless_routes_rfc3442_examples() -> None:
    raw = bytes.fromhex(
        "00 c0a80101"  # default via 192.168.1.1
        "08 0a c0a80102"  # 10.0.0.0/8
        "10 0a11 c0a80103"  # 10.17.0.0/16
        "18 0a1b81 c0a80104"  # 10.27.129.0/24
        "19 0ae50080 c0a80105"  # 10.229.0.128/25
        "20 0ac67a2f c0a80106"  # 10.198.122.47/32
    )
    routes = CLASSLESS_ROUTES.decode(raw)
    assert [str(r) for r in routes] == [
        "0.0.0.0/0 via 192.168.1.1",
        "10.0.0.0/8 via 192.168.1.2",
        "10.17.0.0/16 via 192.168.1.3",
        "10.27.129.0/24 via 192.168.1.4",
        "10.229.0.128/25 via 192.168.1.5",
        "10.198.122.47/32 via 192.168.1.6",
    ]
    assert CLASSLESS_ROUTES.encode(routes) == raw


def test_message_get_and_message_type() -> None:
    msg = DhcpMessage(op=1, xid=1, chaddr=b"\x01" * 6, options={93: b"\x00\x07", 53: b"\x03"})
    assert msg.get(CLIENT_ARCH) == (7,)
    assert msg.get(USER_CLASS) is None
    assert msg.message_type is MessageType.REQUEST


def test_ipv4_helpers() -> None:
    assert format_ipv4(0x0A000001) == "10.0.0.1"
    assert format_ipv4(0xFFFFFFFF) == "255.255.255.255"
    assert parse_ipv4("192.168.1.254") == 0xC0A801FE
    with pytest.raises(ValueError):
        parse_ipv4("10.0.0")


# -- malformed values --------------------------------------------------------------------------

MALFORMED: list[tuple[OptionField[Any], bytes, str]] = [
    (SUBNET_MASK, b"\xff\xff\xff", "length 3 is not 4"),
    (ROUTERS, b"", "length 0 is not a positive multiple of 4"),
    (DNS_SERVERS, b"\x01\x02\x03\x04\x05", "length 5 is not a positive multiple of 4"),
    (HOSTNAME, b"", "length 0, at least 1 byte"),
    (DOMAIN_NAME, b"\xff\xfe", "can't decode byte 0xff"),
    (BROADCAST_ADDRESS, b"\x0a", "length 1 is not 4"),
    (VENDOR_SPECIFIC, b"\x06\x05\x01", "sub-option 6 at offset 0: length 5 runs past the end"),
    (VENDOR_SPECIFIC, b"\x06", "sub-option 6 at offset 0 has no length byte"),
    (REQUESTED_IP, b"", "length 0 is not 4"),
    (LEASE_TIME, b"\x00\x0e\x10", "length 3 is not 4"),
    (MESSAGE_TYPE, b"", "length 0 is not 1"),
    (MESSAGE_TYPE, b"\x00", "unknown message type 0"),
    (MESSAGE_TYPE, b"\x13", "unknown message type 19"),
    (SERVER_ID, b"\x0a\x00\x00\x02\x00", "length 5 is not 4"),
    (PARAMETER_REQUEST_LIST, b"", "length 0, at least 1 byte"),
    (MAX_MESSAGE_SIZE, b"\x05", "length 1 is not 2"),
    (RENEWAL_TIME, b"", "length 0 is not 4"),
    (REBINDING_TIME, b"\x00" * 8, "length 8 is not 4"),
    (VENDOR_CLASS_ID, b"\x80", "can't decode byte 0x80"),
    (CLIENT_ID, b"\x01", "length 1 is below the minimum of 2"),
    (TFTP_SERVER_NAME, b"", "length 0"),
    (BOOTFILE_NAME, b"\xc3", "can't decode byte 0xc3"),
    (RELAY_AGENT_INFO, b"\x01\x09circuit", "sub-option 1 at offset 0: length 9 runs past"),
    (CLIENT_ARCH, b"\x00\x00\x07", "length 3 is not a multiple of 2"),
    (CLIENT_ARCH, b"", "length 0 is not a multiple of 2"),
    (CLIENT_NDI, b"\x01\x02", "length 2 is not 3"),
    (CLIENT_MACHINE_ID, GUID, "length 16 is not 17"),
    (DOMAIN_SEARCH, b"", "length 0"),
    (DOMAIN_SEARCH, b"\x03com", "name at offset 0 runs past the end"),
    (DOMAIN_SEARCH, b"\x05com\x00", "label at offset 0 runs past the end"),
    (DOMAIN_SEARCH, b"\xc0\x00", "pointer at offset 0 to 0 does not point back"),
    (DOMAIN_SEARCH, b"\x01a\x00\x01b\xc0\x03", "pointer at offset 5 to 3 does not point back"),
    (DOMAIN_SEARCH, b"\x01a\xc0", "pointer at offset 2 is cut short"),
    (DOMAIN_SEARCH, b"\x41abc", "label length byte 0x41 at offset 0 is reserved"),
    (DOMAIN_SEARCH, b"\x03\xff\xfe\xfd\x00", "can't decode byte 0xff"),
    (DOMAIN_SEARCH, (b"\x3f" + b"a" * 63) * 4 + b"\x00", "longer than 255 octets"),
    (CLASSLESS_ROUTES, b"", "length 0, at least 5 bytes"),
    (CLASSLESS_ROUTES, b"\x21" + bytes(8), "prefix width 33 is above 32"),
    (CLASSLESS_ROUTES, b"\x18\x0a\x00\x00\x0a\x00\x00", "route at offset 0 runs past the end"),
    (CLASSLESS_ROUTES, b"\x07\x0b\x0a\x00\x00\x01", "11.0.0.0/7 has host bits set"),
    (IPXE_ENCAP, b"\x13\x01", "sub-option 19 at offset 0: length 1 runs past"),
]


@pytest.mark.parametrize(
    ("field", "raw", "detail"), MALFORMED, ids=lambda x: getattr(x, "name", None)
)
def test_malformed_value(field: OptionField[Any], raw: bytes, detail: str) -> None:
    prefix = f"malformed DHCP option {field.code} ({field.name}): "
    with pytest.raises(DhcpParseError, match=re.escape(prefix) + ".*" + re.escape(detail)):
        field.decode(raw)
    assert field.describe(raw).startswith("MALFORMED (")


def test_malformed_message_from_the_brief() -> None:
    msg = DhcpMessage(op=1, xid=1, chaddr=b"", hlen=0, options={93: b"\x00\x00\x07"})
    with pytest.raises(DhcpParseError) as info:
        msg.get(CLIENT_ARCH)
    assert str(info.value) == (
        "malformed DHCP option 93 (client architecture): length 3 is not a multiple of 2"
    )


def test_describe_shows_malformed_and_unknown_options() -> None:
    msg = DhcpMessage(op=1, xid=1, chaddr=b"", hlen=0, options={93: b"\x07", 250: b"\x01\x02"})
    text = msg.describe()
    detail = "MALFORMED (length 1 is not a multiple of 2): 07"
    assert f"option 93 (client architecture): {detail}" in text
    assert "option 250: 0102" in text


# -- values that cannot be encoded ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (SUBNET_MASK, 2**32),
        (ROUTERS, ()),
        (ROUTERS, (-1,)),
        (HOSTNAME, ""),
        (HOSTNAME, "a\0b"),
        (LEASE_TIME, -1),
        (MESSAGE_TYPE, 256),
        (PARAMETER_REQUEST_LIST, ()),
        (PARAMETER_REQUEST_LIST, (256,)),
        (MAX_MESSAGE_SIZE, 65536),
        (CLIENT_ID, ClientId(256, b"x")),
        (USER_CLASS, ()),
        (USER_CLASS, (b"",)),
        (USER_CLASS, (b"x" * 256,)),
        (VENDOR_SPECIFIC, {255: b"x"}),
        (VENDOR_SPECIFIC, {0: b"x"}),
        (VENDOR_SPECIFIC, {6: b"x" * 256}),
        (IPXE_ENCAP, {256: b""}),
        (CLIENT_ARCH, ()),
        (CLIENT_ARCH, (65536,)),
        (CLIENT_NDI, ClientNdi(1, 2, 300)),
        (CLIENT_MACHINE_ID, ClientMachineId(0, b"short")),
        (DOMAIN_SEARCH, ()),
        (DOMAIN_SEARCH, ("a..b",)),
        (DOMAIN_SEARCH, ("x" * 64 + ".com",)),
        (DOMAIN_SEARCH, (".".join(["a" * 63] * 4),)),
        (DOMAIN_SEARCH, ("bücher.example",)),
        (CLASSLESS_ROUTES, ()),
        (CLASSLESS_ROUTES, (ClasslessRoute(0x0A000001, 8, 1),)),
        (CLASSLESS_ROUTES, (ClasslessRoute(0, 33, 1),)),
        (CLASSLESS_ROUTES, (ClasslessRoute(0, 0, 2**32),)),
    ],
    ids=lambda x: getattr(x, "name", None),
)
def test_encode_refuses(field: OptionField[Any], value: object) -> None:
    with pytest.raises(ValueError, match=rf"cannot encode DHCP option {field.code} \("):
        field.encode(value)


def test_option_field_repr() -> None:
    assert repr(CLIENT_ARCH) == "<OptionField 93 (client architecture)>"
