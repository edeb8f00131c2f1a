"""Safety on a served link: an address already in use is not offered (ARP probe), and another
DHCP server answering there is found and reported (rogue-server probe)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.dhcp_lab import api, edgebox_dhcp
from tests.lab import Lab, skip_unless_lab
from tests.lab.clients import make_client

pytestmark = pytest.mark.root

SUBNET = {
    "cidr": "10.231.0.0/24",
    "ranges": [{"start": "10.231.0.100", "end": "10.231.0.101"}],
    "router": "10.231.0.1",
}


def test_an_address_in_use_is_not_offered(tmp_path: Path) -> None:
    skip_unless_lab("busybox")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        # A host that configured .100 by hand, unknown to edgebox.
        squatter = lab.netns("sq")
        lab.veth(squatter, "veth-sq", net.client_ns, "br-sq")
        lab.attach(net.client_ns, "br-sq", "br0")
        lab.addr(squatter, "veth-sq", "10.231.0.100/24")
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], [SUBNET], arp_probe_ms=300) as daemon:
            with make_client("udhcpc", lab, net.client_ns, "br0") as client:
                lease = client.obtain()
            assert lease.address == "10.231.0.101"
            events = api(daemon, "/events?limit=1000")["items"]
            in_use = [e for e in events if e["type"] == "dhcp.address_in_use"]
            assert in_use and in_use[0]["data"]["ip"] == "10.231.0.100"
            assert in_use[0]["data"]["holder"] == lab.mac(squatter, "veth-sq")
            assert in_use[0]["level"] == "warning"


def test_another_dhcp_server_on_the_link_is_reported(tmp_path: Path) -> None:
    skip_unless_lab("dnsmasq")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        rogue = lab.netns("rogue")
        lab.veth(rogue, "veth-rg", net.client_ns, "br-rg")
        lab.attach(net.client_ns, "br-rg", "br0")
        lab.addr(rogue, "veth-rg", "10.231.0.9/24")
        dnsmasq = lab.run(
            rogue,
            ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--port=0",
             "--interface=veth-rg", "--bind-interfaces", "--no-ping",
             "--dhcp-range=10.231.0.200,10.231.0.210,5m",
             f"--dhcp-leasefile={lab.tmpdir / 'rogue.leases'}"],
        )  # fmt: skip
        time.sleep(0.5)
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], [SUBNET], rogue_probe_interval=600) as daemon:
            deadline = time.monotonic() + 15
            status = api(daemon, "/dhcp/status")
            while not status["foreign_servers"] and time.monotonic() < deadline:
                time.sleep(0.25)
                status = api(daemon, "/dhcp/status")
            assert [s["server_ip"] for s in status["foreign_servers"]] == ["10.231.0.9"]
            assert status["foreign_servers"][0]["interface"] == net.server_if
            assert status["foreign_servers"][0]["offered_ip"].startswith("10.231.0.2")
            assert status["warnings"] == [
                f"another DHCP server 10.231.0.9 answers on {net.server_if}"
            ]
            events = api(daemon, "/events?limit=1000")["items"]
            assert [
                e["data"]["server_ip"] for e in events if e["type"] == "dhcp.foreign_server"
            ] == ["10.231.0.9"]
        lab.stop(dnsmasq)
