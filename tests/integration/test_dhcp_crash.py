"""kill -9 during a perfdhcp run: after a restart every ACK the clients saw (captured on
their side) has its lease in the database, and no address was ever ACKed to two clients."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.utils import rdpcap

from tests.integration.daemon import running, start, wait_ready, write_config
from tests.lab import Lab, skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

GIADDR = "10.232.0.1"


def _acks(pcap: Path) -> list[tuple[str, str]]:
    """(yiaddr, client MAC) of every DHCPACK in the capture."""
    acks = []
    for packet in rdpcap(str(pcap)):
        if BOOTP not in packet or DHCP not in packet:
            continue
        options = dict(o for o in packet[DHCP].options if isinstance(o, tuple) and len(o) == 2)
        if options.get("message-type") == 5:
            mac = packet[BOOTP].chaddr[:6].hex(":")
            acks.append((packet[BOOTP].yiaddr, mac))
    return acks


def _leases(api_url: str, token: str) -> dict[str, tuple[str, str]]:
    request = urllib.request.Request(
        f"{api_url}/api/v1/dhcp/leases?limit=100000",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        items = json.loads(resp.read())["items"]
    return {x["ip"]: (x["mac"], x["state"]) for x in items}


def test_kill_9_under_load_loses_no_acked_lease(tmp_path: Path) -> None:
    skip_unless_lab("perfdhcp", "tcpdump")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.1.1/24", client_addr="10.231.1.2/24")
        lab.addr(net.client_ns, net.client_if, f"{GIADDR}/16")
        lab.route(net.server_ns, "10.232.0.0/16", "10.231.1.2")
        dhcp = {
            "interfaces": [{"name": net.server_if, "netns": net.server_ns}],
            "subnets": [
                {"cidr": "10.231.1.0/24"},
                {
                    "cidr": "10.232.0.0/16",
                    "ranges": [{"start": "10.232.0.10", "end": "10.232.234.255"}],
                    "router": GIADDR,
                },
            ],
            "rogue_probe_interval": 0,
        }
        config = write_config(tmp_path, dhcp=dhcp)
        pcap = lab.tmpdir / "client-side.pcap"
        capture = lab.run(
            net.client_ns,
            ["tcpdump", "-U", "-n", "-i", net.client_if, "-w", str(pcap), "udp", "port", "67"],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        daemon = start(config)
        token = daemon.admin_token
        assert token
        load = lab.run(
            net.client_ns,
            ["perfdhcp", "-4", "-l", GIADDR, "-g", "single", "-R", "5000", "-r", "2000",
             "-p", "6", "10.231.1.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2.5)
        daemon.proc.send_signal(signal.SIGKILL)
        assert daemon.proc.wait(10) == -signal.SIGKILL
        load.wait(30)
        time.sleep(0.5)
        lab.stop(capture)

        acks = _acks(pcap)
        assert len(acks) > 500, f"only {len(acks)} ACKs before the kill"
        holders: dict[str, set[str]] = {}
        for ip, mac in acks:
            holders.setdefault(ip, set()).add(mac)
        shared = {ip: macs for ip, macs in holders.items() if len(macs) > 1}
        assert not shared, f"addresses ACKed to two clients: {list(shared.items())[:5]}"

        with running(config, name="after-kill") as again:
            wait_ready(again)
            stored = _leases(again.api_url, token)
            again.stop()
        missing = [
            (ip, macs) for ip, macs in holders.items() if stored.get(ip, ("", ""))[0] not in macs
        ]
        assert not missing, f"{len(missing)} ACKed leases missing after restart: {missing[:5]}"
        print(f"ACKs seen by clients before the kill: {len(acks)}, all {len(holders)} in the db")
