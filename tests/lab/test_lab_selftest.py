"""The lab library itself: topologies carry traffic, and teardown leaves nothing behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.lab import Lab, LabError, list_namespaces, skip_unless_lab

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    skip_unless_lab("ip", "sysctl")


def gone(pid: int, wait: float = 3.0) -> bool:
    """True once `pid` no longer exists (or is only a zombie waiting for its parent)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_two_hosts_ping_and_teardown() -> None:
    with Lab() as lab:
        net = lab.two_hosts(client_addr="10.231.0.2/24")
        assert net.server_ns != net.client_ns
        assert {net.server_ns, net.client_ns} <= set(list_namespaces())
        assert lab.ping(net.client_ns, net.server_ip)
        assert lab.ping(net.server_ns, "10.231.0.2")
        # The pair joins the two lab namespaces directly; neither end is in the root namespace.
        link = lab.exec(net.client_ns, ["ip", "-d", "link", "show", net.client_if]).stdout
        assert f"link-netns {net.server_ns}" in link
        sleeper = lab.run(net.server_ns, ["sleep", "300"])
        assert sleeper.poll() is None
        assert sleeper.pid in lab.pids_in(net.server_ns)
        names = list(lab.namespaces)
    assert gone(sleeper.pid)
    assert sleeper.returncode is not None
    left = set(list_namespaces())
    assert not left & set(names)


def test_teardown_when_the_body_raises() -> None:
    names: list[str] = []
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), Lab() as lab:
        net = lab.two_hosts()
        names = list(lab.namespaces)
        pids.append(lab.run(net.client_ns, ["sleep", "300"]).pid)
        pids.append(lab.run(net.server_ns, ["sleep", "300"]).pid)
        raise RuntimeError("boom")
    assert all(gone(pid) for pid in pids)
    assert not set(names) & set(list_namespaces())


def test_teardown_stops_a_process_that_escaped_its_session() -> None:
    """A daemon that double-forks into a new session is still found inside our namespace."""
    with Lab() as lab:
        ns = lab.netns("d")
        pidfile = lab.tmpdir / "daemon.pid"
        lab.exec(ns, ["sh", "-c", f"setsid sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}"])
        daemon = int(pidfile.read_text())
        assert daemon in lab.pids_in(ns)
        problems = lab.close()
    assert gone(daemon)
    assert any("leftover" in p for p in problems)
    assert ns not in list_namespaces()


def test_sigterm_ignored_gets_sigkill() -> None:
    with Lab(grace=0.5) as lab:
        ns = lab.netns("k")
        proc = lab.run(ns, ["sh", "-c", "trap '' TERM; sleep 300 & wait"])
        time.sleep(0.2)
        started = time.monotonic()
    assert gone(proc.pid)
    assert time.monotonic() - started < 5


def test_relay_topology_forwards() -> None:
    with Lab() as lab:
        top = lab.relay_topology()
        assert len({top.client_ns, top.relay_ns, top.server_ns}) == 3
        forwarding = lab.exec(top.relay_ns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout
        assert forwarding.strip() == "1"
        # Give the client a static address to prove the path; a DHCP client would do this.
        lab.addr(top.client_ns, top.client_if, "10.231.20.50/24")
        lab.ip("route", "add", "default", "via", top.relay_client_ip, ns=top.client_ns)
        assert lab.ping(top.client_ns, top.server_ip)
        assert lab.ping(top.server_ns, "10.231.20.50")


def test_bridge_and_tap() -> None:
    with Lab() as lab:
        net = lab.two_hosts(client_addr="10.231.0.2/24", bridge=True)
        lab.tap(net.client_ns, "tap0", bridge=net.bridge)
        links = lab.exec(net.client_ns, ["ip", "-d", "link", "show", "br0"]).stdout
        assert "stp_state 0" in links
        assert "forward_delay 0" in links
        ports = lab.exec(net.client_ns, ["ip", "-br", "link", "show", "master", "br0"]).stdout
        assert "tap0" in ports
        assert net.client_if in ports
        assert lab.ping(net.client_ns, net.server_ip)


def test_exec_timeout_and_errors() -> None:
    with Lab() as lab:
        ns = lab.netns("x")
        with pytest.raises(subprocess.TimeoutExpired):
            lab.exec(ns, ["sleep", "30"], timeout=0.5)
        with pytest.raises(LabError, match="exited 3"):
            lab.exec(ns, ["sh", "-c", "exit 3"])
        assert lab.exec(ns, ["sh", "-c", "exit 3"], check=False).returncode == 3
        with pytest.raises(LabError):
            lab.exec("not-a-namespace-of-this-lab", ["true"])
    with pytest.raises(LabError, match="closed"):
        lab.netns("late")
