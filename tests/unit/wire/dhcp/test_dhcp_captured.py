"""Golden tests from real captures: requests that real clients and firmware sent (captured by
tests/tools_capture_dhcp.py) decode to the reviewed rendering, and the boot decision for each
is the loader its firmware needs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP

from edgebox.wire.dhcp import MessageType, parse_ipv4, parse_message
from edgebox.wire.dhcp.boot import BootKind, Transport, choose_boot
from edgebox.wire.dhcp.server_config import BootFiles

CAPTURED = Path(__file__).parent / "captured"
UPDATE = os.environ.get("EDGEBOX_UPDATE_GOLDEN") == "1"
CAPTURES = sorted(CAPTURED.glob("*.hex"))
BOOT = BootFiles(
    tftp_server=parse_ipv4("10.231.0.1"),
    http_base="http://10.231.0.1:5248",
    script_url="http://10.231.0.1:5248/boot/ipxe?mac={mac}",
)
# What each firmware must be given (None: not a network-boot client).
EXPECTED = {
    "dhclient": None,
    "udhcpc": None,
    "dhcpcd": None,
    "ipxe_bios": (BootKind.IPXE, Transport.HTTP, "http://10.231.0.1:5248/boot/ipxe?mac="),
    "ovmf_pxe": (BootKind.UEFI, Transport.TFTP, "snponly.efi"),
    "ovmf_http": (BootKind.UEFI_HTTP, Transport.HTTP, "http://10.231.0.1:5248/loaders/ipxe.efi"),
}


def _load(path: Path) -> bytes:
    text = re.sub(r"#[^\n]*", "", path.read_text())
    return bytes.fromhex("".join(text.split()))


def test_every_kind_of_client_was_captured() -> None:
    names = {p.stem for p in CAPTURES}
    assert names == {f"{c}_{t}" for c in EXPECTED for t in ("discover", "request")}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_capture_renders_as_reviewed(path: Path) -> None:
    msg = parse_message(_load(path))
    golden = path.with_suffix(".txt")
    if UPDATE or not golden.exists():
        golden.write_text(msg.describe())
    assert msg.describe() == golden.read_text()
    kind = path.stem.rsplit("_", 1)[1]
    assert (
        msg.message_type is {"discover": MessageType.DISCOVER, "request": MessageType.REQUEST}[kind]
    )
    # scapy, as an oracle, reads the same header.
    oracle = BOOTP(_load(path))
    assert oracle.xid == msg.xid and bytes(oracle.chaddr[:6]) == msg.chaddr


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_capture_gets_the_loader_its_firmware_needs(path: Path) -> None:
    client = path.stem.rsplit("_", 1)[0]
    msg = parse_message(_load(path))
    choice = choose_boot(msg, BOOT)
    expected = EXPECTED[client]
    if expected is None:
        assert choice is None
        return
    assert choice is not None
    kind, transport, file = expected
    assert (choice.kind, choice.transport) == (kind, transport)
    assert choice.file.startswith(file)
