"""The real-client helpers, proven against dnsmasq: obtain, renew and release with each client."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab import Lab, TwoHosts, skip_unless_lab
from tests.lab.clients import CLIENTS, DhcpClientError, Udhcpc, get_lease, make_client

pytestmark = pytest.mark.root

RANGE = ("10.231.0.100", "10.231.0.199")
LEASE_TIME = 600


@dataclass
class DnsmasqLab:
    lab: Lab
    net: TwoHosts
    proc: subprocess.Popen[Any]
    log: Path
    leases: Path

    def log_lines(self, kind: str, mac: str) -> list[str]:
        """dnsmasq's log lines for one message kind (DHCPACK, DHCPRELEASE...) and one MAC."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line
            for line in text.splitlines()
            if re.search(rf"\b{kind}\(", line) and mac.lower() in line.lower()
        ]

    def wait_log(self, kind: str, mac: str, count: int, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(kind, mac)
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def lease_file_has(self, mac: str) -> bool:
        text = self.leases.read_text() if self.leases.exists() else ""
        return mac.lower() in text.lower()


def start_dnsmasq(lab: Lab, net: TwoHosts, extra: tuple[str, ...] = ()) -> DnsmasqLab:
    workdir = lab.tmpdir / "dnsmasq"
    workdir.mkdir()
    log = workdir / "dnsmasq.log"
    leases = workdir / "leases"
    argv = [
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        f"--interface={net.server_if}",
        "--bind-interfaces",
        f"--dhcp-range={RANGE[0]},{RANGE[1]},255.255.255.0,{LEASE_TIME}",
        f"--dhcp-option=option:router,{net.server_ip}",
        f"--dhcp-leasefile={leases}",
        "--no-ping",
        "--log-dhcp",
        f"--log-facility={log}",
        f"--pid-file={workdir / 'dnsmasq.pid'}",
        *extra,
    ]
    proc = lab.run(net.server_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while "sockets bound" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None:
            raise RuntimeError(f"dnsmasq exited: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise RuntimeError("dnsmasq did not start within 5 s")
        time.sleep(0.05)
    return DnsmasqLab(lab, net, proc, log, leases)


@pytest.fixture
def dnsmasq_lab() -> Iterator[DnsmasqLab]:
    skip_unless_lab("dnsmasq", "dhclient", "busybox", "dhcpcd", "unshare", "mount")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24")
        yield start_dnsmasq(lab, net)


def in_range(address: str) -> bool:
    ip = ipaddress.IPv4Address(address)
    return ipaddress.IPv4Address(RANGE[0]) <= ip <= ipaddress.IPv4Address(RANGE[1])


def configured(lab: Lab, net: TwoHosts) -> str:
    return lab.exec(net.client_ns, ["ip", "-4", "-o", "addr", "show", "dev", net.client_if]).stdout


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_obtain_renew_release(dnsmasq_lab: DnsmasqLab, kind: str) -> None:
    lab, net = dnsmasq_lab.lab, dnsmasq_lab.net
    mac = lab.mac(net.client_ns, net.client_if)
    with make_client(kind, lab, net.client_ns, net.client_if) as client:
        lease = client.obtain(timeout=20)
        assert in_range(lease.address), lease
        assert lease.prefix_len == 24
        assert lease.lease_time == LEASE_TIME
        assert lease.router == net.server_ip
        assert lease.server_id == net.server_ip
        assert lease.client == kind
        assert lease.elapsed < 20
        # The client configured its interface (inside the client namespace only).
        assert f" {lease.address}/24 " in configured(lab, net)
        acks = dnsmasq_lab.wait_log("DHCPACK", mac, 1)
        assert len(acks) == 1, dnsmasq_lab.log.read_text()
        assert lease.address in acks[0]
        assert dnsmasq_lab.lease_file_has(mac)

        renewed = client.renew(timeout=20)
        assert renewed.address == lease.address
        assert renewed.lease_time == LEASE_TIME
        acks = dnsmasq_lab.wait_log("DHCPACK", mac, 2)
        # udhcpc may lose the ACK of its unicast renew and retry (see clients.py): 2 or 3.
        assert 2 <= len(acks) <= (3 if kind == "udhcpc" else 2), dnsmasq_lab.log.read_text()
        assert not dnsmasq_lab.log_lines("DHCPDISCOVER", mac)[1:], "renew must not rediscover"

        client.release(timeout=10)
        releases = dnsmasq_lab.wait_log("DHCPRELEASE", mac, 1)
        assert releases, dnsmasq_lab.log.read_text()
        assert lease.address in releases[0]
        deadline = time.monotonic() + 5
        while dnsmasq_lab.lease_file_has(mac) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not dnsmasq_lab.lease_file_has(mac)
        assert f" {lease.address}/" not in configured(lab, net)
        assert client.proc is None


def test_one_shot_get_lease(dnsmasq_lab: DnsmasqLab) -> None:
    lease = get_lease("udhcpc", dnsmasq_lab.lab, dnsmasq_lab.net.client_ns, "veth-cli")
    assert in_range(lease.address)
    assert lease.options.get("opt53") == "05"  # the ACK's message type, as udhcpc saw it


def test_no_server_times_out_with_the_client_log() -> None:
    skip_unless_lab("busybox")
    with Lab() as lab:
        net = lab.two_hosts()
        started = time.monotonic()
        with pytest.raises(DhcpClientError, match="udhcpc") as info:
            Udhcpc(lab, net.client_ns, net.client_if).obtain(timeout=3)
        assert time.monotonic() - started < 8
        assert "discover" in str(info.value)


def test_unknown_client_name() -> None:
    with pytest.raises(ValueError, match="unknown DHCP client"):
        make_client("pump", None, "ns", "if")  # type: ignore[arg-type]


def test_relayed_lease_through_dhcrelay() -> None:
    """relay_topology with isc-dhcp-relay in the middle and dnsmasq behind it."""
    skip_unless_lab("dnsmasq", "dhcrelay", "busybox")
    with Lab() as lab:
        top = lab.relay_topology()
        workdir = lab.tmpdir / "dnsmasq"
        workdir.mkdir()
        log = workdir / "dnsmasq.log"
        lab.run(
            top.server_ns,
            [
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--port=0",
                f"--interface={top.server_if}",
                "--bind-interfaces",
                "--dhcp-range=10.231.20.100,10.231.20.199,255.255.255.0,600",
                f"--dhcp-option=option:router,{top.relay_client_ip}",
                f"--dhcp-leasefile={workdir / 'leases'}",
                "--no-ping",
                "--log-dhcp",
                f"--log-facility={log}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        lab.run(
            top.relay_ns,
            [
                "dhcrelay",
                "-4",
                "-d",
                "-id",
                top.relay_client_if,
                "-iu",
                top.relay_server_if,
                top.server_ip,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # both listen within a few ms; the client retries anyway
        with Udhcpc(lab, top.client_ns, top.client_if) as client:
            lease = client.obtain(timeout=20)
        assert lease.address.startswith("10.231.20.")
        assert lease.router == top.relay_client_ip
        assert lease.server_id == top.server_ip
        assert "DHCPACK" in log.read_text()
