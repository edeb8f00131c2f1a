"""Golden tests: fixture packets decode to the reviewed text rendering in NAME.txt."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP

from edgebox.wire.dhcp import (
    CLIENT_ARCH,
    CLIENT_MACHINE_ID,
    CLIENT_NDI,
    IPXE_ENCAP,
    RELAY_AGENT_INFO,
    USER_CLASS,
    VENDOR_CLASS_ID,
    ClientNdi,
    MessageType,
    encode_message,
    format_ipv4,
    parse_message,
)
from edgebox.wire.dhcp.options import IPXE_BUS_ID, IPXE_FEATURE_HTTP, RELAY_CIRCUIT_ID

FIXTURES = Path(__file__).parent / "fixtures"
UPDATE = os.environ.get("EDGEBOX_UPDATE_GOLDEN") == "1"
HEX_FILES = sorted(FIXTURES.glob("*.hex"))


def load_hex(path: Path) -> bytes:
    text = re.sub(r"#[^\n]*", "", path.read_text())
    return bytes.fromhex("".join(text.split()))


def load(name: str) -> bytes:
    return load_hex(FIXTURES / f"{name}.hex")


def test_there_are_fixtures() -> None:
    assert len(HEX_FILES) >= 5


@pytest.mark.parametrize("path", HEX_FILES, ids=lambda p: p.stem)
def test_fixture_renders_as_golden_text(path: Path) -> None:
    rendered = parse_message(load_hex(path)).describe()
    golden = path.with_suffix(".txt")
    if UPDATE:
        golden.write_text(rendered)
    assert golden.exists(), f"no {golden.name}: run with EDGEBOX_UPDATE_GOLDEN=1 and review it"
    assert rendered == golden.read_text()


@pytest.mark.parametrize("path", HEX_FILES, ids=lambda p: p.stem)
def test_fixture_reencodes_to_the_same_message(path: Path) -> None:
    msg = parse_message(load_hex(path))
    assert parse_message(encode_message(msg)) == msg


@pytest.mark.parametrize("path", HEX_FILES, ids=lambda p: p.stem)
def test_fixture_agrees_with_scapy(path: Path) -> None:
    data = load_hex(path)
    ours = parse_message(data)
    theirs = BOOTP(data)
    assert theirs.xid == ours.xid
    assert theirs.chaddr[: theirs.hlen] == ours.chaddr
    for field in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
        assert getattr(theirs, field) == format_ipv4(getattr(ours, field))
    named = {o[0]: o[1:] for o in theirs[DHCP].options if isinstance(o, tuple)}
    assert named["message-type"] == (ours.message_type,)


def test_bios_pxe_discover() -> None:
    msg = parse_message(load("bios_pxe_discover"))
    assert msg.message_type is MessageType.DISCOVER
    assert msg.mac == "00:1b:21:3c:4d:5e"
    assert msg.broadcast
    assert msg.get(CLIENT_ARCH) == (0,)
    assert msg.get(CLIENT_NDI) == ClientNdi(1, 2, 1)
    assert msg.get(VENDOR_CLASS_ID) == "PXEClient:Arch:00000:UNDI:002001"
    machine_id = msg.get(CLIENT_MACHINE_ID)
    assert machine_id is not None
    assert str(machine_id.smbios_uuid) == "4c4c4544-0034-5a10-8051-b4c04f4e3932"


def test_uefi_x64_discover() -> None:
    msg = parse_message(load("uefi_x64_discover"))
    assert msg.get(CLIENT_ARCH) == (7,)
    assert msg.get(VENDOR_CLASS_ID) == "PXEClient:Arch:00007:UNDI:003016"
    assert not msg.broadcast


def test_uefi_http_discover() -> None:
    msg = parse_message(load("uefi_http_discover"))
    assert msg.get(CLIENT_ARCH) == (16,)
    vendor_class = msg.get(VENDOR_CLASS_ID)
    assert vendor_class is not None
    assert vendor_class.startswith("HTTPClient")


def test_ipxe_discover() -> None:
    msg = parse_message(load("ipxe_discover"))
    assert msg.options[77] == b"iPXE"
    assert msg.get(USER_CLASS) == (b"iPXE",)
    encap = msg.get(IPXE_ENCAP)
    assert encap is not None
    assert encap[IPXE_FEATURE_HTTP] == b"\x01"
    assert encap[IPXE_BUS_ID] == bytes.fromhex("018086100e")


def test_relayed_request() -> None:
    msg = parse_message(load("relayed_request"))
    assert msg.message_type is MessageType.REQUEST
    assert msg.hops == 1
    assert msg.giaddr == 0x0A140001
    relay = msg.get(RELAY_AGENT_INFO)
    assert relay is not None
    assert relay[RELAY_CIRCUIT_ID] == b"swp12:vlan20"
    # Kept byte for byte, so a server can echo it (RFC 3046 section 2.2).
    raw = msg.options[82]
    assert bytes((82, len(raw))) + raw in load("relayed_request")
