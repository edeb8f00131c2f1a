"""Real DHCP clients (ISC dhclient, busybox udhcpc, dhcpcd) against edgebox in namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.dhcp_lab import api, edgebox_dhcp, leases
from tests.lab import Lab, skip_unless_lab
from tests.lab.clients import make_client

pytestmark = pytest.mark.root

SUBNET = {
    "cidr": "10.231.0.0/24",
    "ranges": [{"start": "10.231.0.100", "end": "10.231.0.199"}],
    "router": "10.231.0.1",
    "dns": ["10.231.0.1"],
    "lease_time": 600,
}
CLIENT_TOOL = {"dhclient": "dhclient", "udhcpc": "busybox", "dhcpcd": "dhcpcd"}


@pytest.mark.parametrize("kind", ["dhclient", "udhcpc", "dhcpcd"])
def test_client_obtains_renews_and_releases(tmp_path: Path, kind: str) -> None:
    skip_unless_lab(CLIENT_TOOL[kind])
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24")
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], [SUBNET], arp_probe_ms=100) as daemon:
            client_mac = lab.mac(net.client_ns, net.client_if)
            with make_client(kind, lab, net.client_ns, net.client_if) as client:
                lease = client.obtain()
                assert lease.address.startswith("10.231.0.1")
                assert 100 <= int(lease.address.rsplit(".", 1)[1]) <= 199
                assert lease.prefix_len == 24
                assert lease.router == "10.231.0.1"
                assert lease.server_id == "10.231.0.1"
                assert lease.lease_time == 600
                bound = [x for x in leases(daemon) if x["mac"] == client_mac]
                assert [(x["ip"], x["state"]) for x in bound] == [(lease.address, "bound")]

                renewed = client.renew()
                assert renewed.address == lease.address

                client.release()
            after = [x for x in leases(daemon) if x["mac"] == client_mac]
            assert [(x["ip"], x["state"]) for x in after] == [(lease.address, "released")]
            status = api(daemon, "/dhcp/status")
            assert status["interfaces"][0]["state"] == "up"
            assert status["interfaces"][0]["received"] >= 3


def test_two_clients_get_different_addresses_and_keep_them(tmp_path: Path) -> None:
    skip_unless_lab("dhclient", "busybox")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        # A second client namespace on the same bridge.
        other = lab.netns("cli2")
        lab.veth(other, "veth-c2", net.client_ns, "br-c2")
        lab.attach(net.client_ns, "br-c2", "br0")
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], [SUBNET]) as daemon:
            token = daemon.admin_token
            with (
                make_client("dhclient", lab, net.client_ns, "br0") as one,
                make_client("udhcpc", lab, other, "veth-c2") as two,
            ):
                first = one.obtain()
                second = two.obtain()
                assert first.address != second.address
                ips = [x["ip"] for x in leases(daemon) if x["state"] == "bound"]
                assert sorted(ips) == sorted([first.address, second.address])
            # udhcpc -R releases on exit; dhclient just stops. Record what the server holds.
            before = {(x["ip"], x["mac"], x["state"]) for x in leases(daemon)}
            assert daemon.stop() == 0
        # After a restart the leases are still there (durable before the ACK).
        with edgebox_dhcp(tmp_path, [iface], [SUBNET]) as again:
            after = {(x["ip"], x["mac"], x["state"]) for x in leases(again, token)}
            assert after == before
            assert {ip for ip, _, _ in after} == {first.address, second.address}


def test_the_dhcp_cli(tmp_path: Path) -> None:
    skip_unless_lab("busybox")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24")
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], [SUBNET]) as daemon:
            token = daemon.admin_token
            assert token

            def cli(*args: str) -> subprocess.CompletedProcess[str]:
                argv = [sys.executable, "-m", "edgebox", "--url", daemon.api_url, "--token", token]
                return subprocess.run(
                    [*argv, *args], capture_output=True, text=True, timeout=30, check=False
                )

            with make_client("udhcpc", lab, net.client_ns, net.client_if) as client:
                lease = client.obtain()
                status = cli("dhcp", "status")
                assert status.returncode == 0, status.stderr
                assert net.server_if in status.stdout and "up" in status.stdout
                listed = json.loads(cli("--json", "dhcp", "leases", "--state", "bound").stdout)
                assert [x["ip"] for x in listed] == [lease.address]
                added = cli(
                    "dhcp", "subnet-add", "10.240.0.0/24", "--range", "10.240.0.10-10.240.0.20"
                )
                assert added.returncode == 0, added.stderr
                overlap = cli("dhcp", "subnet-add", "10.240.0.128/25")
                assert overlap.returncode == 1 and "overlaps" in overlap.stderr
                readonly = cli("dhcp", "subnet-delete", "10.231.0.0/24")
                assert readonly.returncode == 1 and "configuration file" in readonly.stderr
                subnets = cli("dhcp", "subnets").stdout
                assert "10.240.0.0/24" in subnets and "10.231.0.0/24" in subnets
                assert cli("dhcp", "release", lease.address).returncode == 0
                after = json.loads(cli("--json", "dhcp", "leases").stdout)
                assert [(x["ip"], x["state"]) for x in after] == [(lease.address, "released")]
