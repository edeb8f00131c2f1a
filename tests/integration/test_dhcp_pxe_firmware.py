"""Real PXE clients: QEMU VMs with iPXE ROMs and OVMF's own UEFI PXE and HTTP boot get the
loader that their firmware needs from edgebox's DHCP, and an unknown one is enlisted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon
from tests.integration.dhcp_lab import api, edgebox_dhcp
from tests.integration.qemu_vm import Vm, start_vm
from tests.lab import Lab, skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

SUBNET = {
    "cidr": "10.231.0.0/24",
    "ranges": [{"start": "10.231.0.100", "end": "10.231.0.199"}],
    "router": "10.231.0.1",
}


def boot_events(daemon: Daemon, mac: str) -> list[dict[str, Any]]:
    items = api(daemon, "/events?limit=1000")["items"]
    return [e for e in items if e["type"] == "boot.dhcp" and e["data"]["mac"] == mac]


def wait_for(daemon: Daemon, vm: Vm, kinds: set[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = boot_events(daemon, vm.mac)
        if kinds <= {e["data"]["kind"] for e in events}:
            return events
        if vm.proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(
        f"no boot events {kinds} for {vm.mac} in {timeout}s; got "
        f"{[e['data'] for e in boot_events(daemon, vm.mac)]}; console:\n{vm.output()[-3000:]}"
    )


def test_firmwares_get_their_loaders(tmp_path: Path) -> None:
    skip_unless_lab("qemu-system-x86_64")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], [SUBNET], arp_probe_ms=0) as daemon:
            bios = start_vm(lab, net.client_ns, "br0", "bios", "52:54:00:eb:00:01")
            uefi = start_vm(
                lab, net.client_ns, "br0", "uefi", "52:54:00:eb:00:02",
                firmware="uefi", ipxe_rom=False,
            )  # fmt: skip
            # BIOS with QEMU's iPXE ROM: it already is iPXE, so it gets the boot script URL.
            got = wait_for(daemon, bios, {"ipxe"}, 90)
            ipxe = next(e["data"] for e in got if e["data"]["kind"] == "ipxe")
            assert ipxe["transport"] == "http"
            assert ipxe["file"].endswith("/boot/ipxe?mac=52:54:00:eb:00:01")
            assert "10.231.0.1" in ipxe["file"]
            # OVMF's own PXE (arch 7): snponly.efi over TFTP; then its HTTP boot (arch 16):
            # an http:// URL of ipxe.efi.
            got = wait_for(daemon, uefi, {"uefi", "uefi_http"}, 240)
            by_kind = {e["data"]["kind"]: e["data"] for e in got}
            assert by_kind["uefi"]["file"] == "snponly.efi"
            assert by_kind["uefi"]["transport"] == "tftp"
            assert by_kind["uefi_http"]["file"].startswith("http://10.231.0.1:")
            assert by_kind["uefi_http"]["file"].endswith("/loaders/ipxe.efi")
            # Both were unknown: each is now a New machine with its MAC.
            for mac in (bios.mac, uefi.mac):
                found = api(daemon, f"/machines?mac={mac}")["items"]
                assert len(found) == 1 and found[0]["status"] == "new", mac
            lab.stop(bios.proc)
            lab.stop(uefi.proc)
