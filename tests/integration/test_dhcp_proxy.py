"""proxyDHCP beside another DHCP server (dnsmasq): the PXE client gets its address from
dnsmasq and its boot file from edgebox, and edgebox hands out no address."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.dhcp_lab import api, edgebox_dhcp, leases
from tests.integration.qemu_vm import start_vm
from tests.lab import Lab, skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

MAC = "52:54:00:eb:01:01"


def test_proxy_next_to_dnsmasq(tmp_path: Path) -> None:
    skip_unless_lab("dnsmasq", "qemu-system-x86_64")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        other = lab.netns("dns")  # the site's existing DHCP server, on the same link
        lab.veth(other, "veth-dns", net.client_ns, "br-dns")
        lab.attach(net.client_ns, "br-dns", "br0")
        lab.addr(other, "veth-dns", "10.231.0.2/24")
        lease_file = lab.tmpdir / "dnsmasq.leases"
        dnsmasq = lab.run(
            other,
            ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--port=0",
             "--interface=veth-dns", "--bind-interfaces", "--no-ping",
             "--dhcp-range=10.231.0.150,10.231.0.160,5m", f"--dhcp-leasefile={lease_file}",
             "--log-dhcp"],
        )  # fmt: skip
        iface = {"name": net.server_if, "netns": net.server_ns, "mode": "proxy"}
        subnet = {"cidr": "10.231.0.0/24"}  # proxy: no ranges, edgebox hands out nothing
        with edgebox_dhcp(tmp_path, [iface], [subnet], arp_probe_ms=0) as daemon:
            vm = start_vm(lab, net.client_ns, "br0", "pxe", MAC)
            deadline = time.monotonic() + 90
            console = ""
            while time.monotonic() < deadline:
                console = vm.output()
                if "/boot/ipxe?mac=" in console and "10.231.0.15" in console:
                    break
                time.sleep(0.5)
            # iPXE shows the address it configured (from dnsmasq's range) and the boot
            # script URL it then fetches (from edgebox's proxy offer).
            assert "10.231.0.15" in console, console[-3000:]
            assert f"/boot/ipxe?mac={MAC}" in console, console[-3000:]
            assert MAC in lease_file.read_text()
            assert leases(daemon) == []  # proxy mode: no address, no lease
            status = api(daemon, "/dhcp/status")
            assert status["interfaces"][0]["mode"] == "proxy"
            assert status["interfaces"][0]["sent"] >= 1
            lab.stop(vm.proc)
        lab.stop(dnsmasq)
