"""A lab of network namespaces: uniquely named, torn down even when the test fails.

    with Lab() as lab:
        net = lab.two_hosts(client_addr="10.231.0.2/24")
        server = lab.run(net.server_ns, ["dnsmasq", "--no-daemon", ...])
        lab.exec(net.client_ns, ["ping", "-c1", net.server_ip])

Every namespace is called `eb-<pid>-<random>-<role>`, so labs of parallel runs (or another
engineer's `srv`) never meet. Links are created directly inside their namespaces
(`ip -n A link add X type veth peer name Y netns B`): no interface of the lab ever exists in
the root namespace, and no test traffic can leave the lab. Teardown kills the processes that
`run` started (by PID, in reverse order, SIGTERM then SIGKILL), then whatever is still inside
the lab's namespaces (`ip netns pids`, namespaces only this lab knows by name), and only then
deletes the namespaces: a namespace that still holds a process stays alive after `ip netns del`.
An `atexit` hook tears down any lab left open when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.lab.processes import stop_pids, stop_process, which

IP = which("ip") or "/usr/sbin/ip"

_LIVE_LABS: set[Lab] = set()
_LIVE_LOCK = threading.Lock()


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def unique_prefix() -> str:
    """`eb-<pid>-<6 hex>`: unique to this process and this lab."""
    return f"eb-{os.getpid()}-{secrets.token_hex(3)}"


def list_namespaces() -> list[str]:
    """Names that `ip netns list` shows (the first word of each line)."""
    out = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def _ip_only(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).ip)


@dataclass(frozen=True)
class TwoHosts:
    """A server namespace and a client namespace joined by one veth pair."""

    server_ns: str
    client_ns: str
    server_if: str
    client_if: str  # the veth end in the client namespace
    server_addr: str  # CIDR
    client_addr: str | None  # CIDR, or None: left for a DHCP client to configure
    bridge: str | None  # in the client namespace, with client_if as a port

    @property
    def server_ip(self) -> str:
        return _ip_only(self.server_addr)

    @property
    def client_ip(self) -> str | None:
        return _ip_only(self.client_addr) if self.client_addr else None

    @property
    def client_link(self) -> str:
        """Where a client on the client side attaches: the bridge if there is one, else the veth."""
        return self.bridge or self.client_if


@dataclass(frozen=True)
class RelayTopology:
    """client ↔ relay ↔ server on two subnets; the relay namespace forwards IPv4."""

    client_ns: str
    relay_ns: str
    server_ns: str
    client_if: str  # in client_ns, unaddressed (for a DHCP client)
    relay_client_if: str  # in relay_ns, facing the client
    relay_server_if: str  # in relay_ns, facing the server
    server_if: str  # in server_ns
    relay_client_addr: str  # CIDR on the client subnet (the giaddr a relay agent would use)
    relay_server_addr: str  # CIDR on the server subnet
    server_addr: str  # CIDR on the server subnet
    client_subnet: str
    server_subnet: str

    @property
    def server_ip(self) -> str:
        return _ip_only(self.server_addr)

    @property
    def relay_client_ip(self) -> str:
        return _ip_only(self.relay_client_addr)

    @property
    def relay_server_ip(self) -> str:
        return _ip_only(self.relay_server_addr)


class Lab:
    """Namespaces, links, addresses and processes that all go away together."""

    def __init__(self, prefix: str | None = None, grace: float = 2.0) -> None:
        self.prefix = prefix or unique_prefix()
        self.grace = grace
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[Any]] = []
        self._tmpdir: Path | None = None
        self._closed = False
        with _LIVE_LOCK:
            _LIVE_LABS.add(self)

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for problem in self.close():
            print(f"lab teardown: {problem}", file=sys.stderr)

    def __hash__(self) -> int:
        return id(self)

    # -- plumbing --------------------------------------------------------------------------

    @property
    def tmpdir(self) -> Path:
        """A private temporary directory, removed at teardown."""
        if self._tmpdir is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        return self._tmpdir

    def ip(self, *args: str, ns: str | None = None) -> str:
        """Run `ip [-n ns] args...`; raise LabError with stderr on failure; return stdout."""
        argv = [IP, *(["-n", ns] if ns else []), *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if out.returncode != 0:
            raise LabError(f"{' '.join(argv)}: {out.stderr.strip() or out.returncode}")
        return out.stdout

    def _check_ns(self, ns: str) -> None:
        if ns not in self.namespaces:
            raise LabError(f"{ns!r} is not a namespace of this lab")

    def netns(self, role: str) -> str:
        """Create the namespace `<prefix>-<role>` with loopback up; return its name."""
        if self._closed:
            raise LabError("the lab is closed")
        name = f"{self.prefix}-{role}"
        if name in self.namespaces:
            raise LabError(f"namespace {name} exists already")
        self.ip("netns", "add", name)
        self.namespaces.append(name)
        self.ip("link", "set", "lo", "up", ns=name)
        return name

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, up: bool = True) -> None:
        """A veth pair created directly inside its two namespaces (never in the root one)."""
        self._check_ns(ns_a)
        self._check_ns(ns_b)
        self.ip("link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b, ns=ns_a)
        if up:
            self.up(ns_a, if_a)
            self.up(ns_b, if_b)

    def bridge(self, ns: str, name: str, ports: Sequence[str] = (), up: bool = True) -> None:
        """A bridge with STP off and no forward delay (else a ROM's first DHCP packet is lost)."""
        self._check_ns(ns)
        self.ip(
            "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0", ns=ns
        )
        for port in ports:
            self.attach(ns, port, name)
        if up:
            self.up(ns, name)

    def attach(self, ns: str, port: str, bridge: str) -> None:
        self.ip("link", "set", port, "master", bridge, ns=ns)

    def tap(self, ns: str, name: str, bridge: str | None = None, up: bool = True) -> None:
        """A tap device for a VM (`-netdev tap,ifname=NAME,script=no,downscript=no`)."""
        self._check_ns(ns)
        self.ip("tuntap", "add", "dev", name, "mode", "tap", ns=ns)
        if bridge:
            self.attach(ns, name, bridge)
        if up:
            self.up(ns, name)

    def addr(self, ns: str, ifname: str, cidr: str) -> None:
        """Add an IPv4 or IPv6 address (IPv6 without duplicate address detection)."""
        self._check_ns(ns)
        iface = ipaddress.ip_interface(cidr)
        if iface.version == 6:
            self.ip("-6", "addr", "add", cidr, "dev", ifname, "nodad", ns=ns)
        else:
            self.ip("addr", "add", cidr, "dev", ifname, ns=ns)

    def up(self, ns: str, ifname: str) -> None:
        self.ip("link", "set", ifname, "up", ns=ns)

    def route(self, ns: str, dest: str, via: str) -> None:
        self.ip("route", "add", dest, "via", via, ns=ns)

    def sysctl(self, ns: str, key: str, value: str) -> None:
        """Set a per-namespace sysctl (e.g. net.ipv4.ip_forward) inside the namespace only."""
        self.exec(ns, ["sysctl", "-q", "-w", f"{key}={value}"])

    def mac(self, ns: str, ifname: str) -> str:
        """The MAC address of an interface in a namespace."""
        return self.exec(ns, ["cat", f"/sys/class/net/{ifname}/address"]).stdout.strip()

    def ping(self, ns: str, address: str, count: int = 1, timeout: float = 5.0) -> bool:
        """True if `address` answers ICMP echo from `ns` (iputils ping, else busybox's)."""
        tool = [which("ping") or ""] if which("ping") else [which("busybox") or "busybox", "ping"]
        argv = [*tool, "-c", str(count), "-W", str(max(1, int(timeout))), address]
        try:
            return self.exec(ns, argv, timeout=timeout + count + 1, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    # -- processes -------------------------------------------------------------------------

    def argv_in(self, ns: str | None, argv: Sequence[str]) -> list[str]:
        """The argv that runs `argv` inside `ns` (unchanged for None: the root namespace)."""
        if ns is None:
            return list(argv)
        self._check_ns(ns)
        return [IP, "netns", "exec", ns, *argv]

    def run(self, ns: str | None, argv: Sequence[str], **popen_kw: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside `ns` (None: the root namespace) and record its PID for teardown.

        `ip netns exec` execs the command, so the PID is the command's own. The process leads a
        new session (its group is what teardown signals) and gets /dev/null as stdin unless told
        otherwise.
        """
        if self._closed:
            raise LabError("the lab is closed")
        popen_kw.setdefault("stdin", subprocess.DEVNULL)
        popen_kw.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv_in(ns, argv), **popen_kw)
        self.processes.append(proc)
        return proc

    def exec(
        self,
        ns: str | None,
        argv: Sequence[str],
        timeout: float = 10.0,
        check: bool = True,
        **run_kw: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside `ns`, capture its text output; raise on failure if `check`.

        On timeout subprocess.run kills the command (our child) and TimeoutExpired propagates.
        """
        run_kw.setdefault("capture_output", True)
        run_kw.setdefault("text", True)
        run_kw.setdefault("stdin", subprocess.DEVNULL)
        out: subprocess.CompletedProcess[str] = subprocess.run(
            self.argv_in(ns, argv), timeout=timeout, check=False, **run_kw
        )
        if check and out.returncode != 0:
            raise LabError(
                f"in {ns or 'root'}: {' '.join(argv)} exited {out.returncode}: "
                f"{(out.stderr or '').strip()}"
            )
        return out

    def stop(self, proc: subprocess.Popen[Any], grace: float | None = None) -> int | None:
        """Stop one process this lab started (SIGTERM, then SIGKILL) and forget it."""
        rc = stop_process(proc, self.grace if grace is None else grace)
        with contextlib.suppress(ValueError):
            self.processes.remove(proc)
        return rc

    def pids_in(self, ns: str) -> list[int]:
        """PIDs of the processes living in one of this lab's namespaces."""
        self._check_ns(ns)
        out = subprocess.run(
            [IP, "netns", "pids", ns], capture_output=True, text=True, timeout=10, check=False
        )
        return [int(word) for word in out.stdout.split() if word.isdigit()]

    # -- topologies ------------------------------------------------------------------------

    def two_hosts(
        self,
        server_addr: str = "10.231.0.1/24",
        client_addr: str | None = None,
        bridge: bool = False,
        server_if: str = "veth-srv",
        client_if: str = "veth-cli",
        server_addr6: str | None = None,
    ) -> TwoHosts:
        """Namespaces `srv` and `cli` joined by a veth pair.

        The server end gets `server_addr` (and `server_addr6`, e.g. a ULA, if given). The client
        end gets `client_addr` if given, else nothing (a DHCP client configures it). With
        `bridge`, the client end is a port of bridge `br0` in the client namespace, where taps
        for VMs can be attached (`lab.tap(net.client_ns, "tap0", bridge=net.bridge)`); the
        client address, if any, then goes on the bridge.
        """
        srv = self.netns("srv")
        cli = self.netns("cli")
        self.veth(srv, server_if, cli, client_if)
        self.addr(srv, server_if, server_addr)
        if server_addr6:
            self.addr(srv, server_if, server_addr6)
        br = None
        if bridge:
            br = "br0"
            self.bridge(cli, br, ports=[client_if])
        if client_addr:
            self.addr(cli, br or client_if, client_addr)
        return TwoHosts(srv, cli, server_if, client_if, server_addr, client_addr, br)

    def relay_topology(
        self,
        client_subnet: str = "10.231.20.0/24",
        server_subnet: str = "10.231.21.0/24",
    ) -> RelayTopology:
        """client ↔ relay ↔ server: namespaces `cli`, `rly`, `srv` on two subnets.

        The relay has the first host address of each subnet and forwards IPv4; the server has
        the second host address of the server subnet and a route to the client subnet through
        the relay. The client end is left unaddressed for a DHCP client.
        """
        csub = ipaddress.ip_network(client_subnet)
        ssub = ipaddress.ip_network(server_subnet)
        relay_c = f"{csub.network_address + 1}/{csub.prefixlen}"
        relay_s = f"{ssub.network_address + 1}/{ssub.prefixlen}"
        server = f"{ssub.network_address + 2}/{ssub.prefixlen}"
        cli = self.netns("cli")
        rly = self.netns("rly")
        srv = self.netns("srv")
        self.veth(cli, "veth-cli", rly, "rly-cli")
        self.veth(rly, "rly-srv", srv, "veth-srv")
        self.addr(rly, "rly-cli", relay_c)
        self.addr(rly, "rly-srv", relay_s)
        self.addr(srv, "veth-srv", server)
        self.sysctl(rly, "net.ipv4.ip_forward", "1")
        self.route(srv, str(csub), _ip_only(relay_s))
        return RelayTopology(
            client_ns=cli,
            relay_ns=rly,
            server_ns=srv,
            client_if="veth-cli",
            relay_client_if="rly-cli",
            relay_server_if="rly-srv",
            server_if="veth-srv",
            relay_client_addr=relay_c,
            relay_server_addr=relay_s,
            server_addr=server,
            client_subnet=str(csub),
            server_subnet=str(ssub),
        )

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Kill our processes (reverse order), then stragglers in our namespaces, then delete
        the namespaces and the temporary directory. Idempotent. Returns problems it met (it
        never raises, so the exception of a failing test body is the one that shows)."""
        if self._closed:
            return []
        self._closed = True
        problems: list[str] = []
        for proc in reversed(self.processes):
            try:
                stop_process(proc, self.grace)
            except Exception as exc:
                problems.append(f"stopping pid {proc.pid}: {exc}")
        self.processes.clear()
        for ns in reversed(self.namespaces):
            try:
                # Only processes our code started can be in a namespace only we know by name
                # (e.g. a daemon that forked away from a process we ran).
                leftover = self.pids_in(ns)
                if leftover:
                    stop_pids(leftover, self.grace)
                    problems.append(f"{ns}: stopped leftover pids {leftover}")
            except Exception as exc:
                problems.append(f"{ns}: listing pids: {exc}")
            out = subprocess.run(
                [IP, "netns", "del", ns], capture_output=True, text=True, timeout=30, check=False
            )
            if out.returncode != 0 and ns in list_namespaces():
                problems.append(f"ip netns del {ns}: {out.stderr.strip()}")
        self.namespaces.clear()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        with _LIVE_LOCK:
            _LIVE_LABS.discard(self)
        return problems


@atexit.register
def _close_live_labs() -> None:
    """Backstop: a lab still open at interpreter exit is torn down."""
    with _LIVE_LOCK:
        labs = list(_LIVE_LABS)
    for lab in labs:
        lab.close()
