"""Real DHCP clients run inside a lab namespace: ISC dhclient, busybox udhcpc, dhcpcd.

Each client runs against whatever server listens in the server namespace and reports what it
got as a `Lease`. Every step has a hard timeout; on expiry `DhcpClientError` carries the
client's own log. The clients are given a hook script of ours that records every event (the
environment the client passes to it) as one file in an events directory, then configures the
interface the way a distribution's script would (dhcpcd configures it itself), so that a renew or
a release, which a client sends unicast from its leased address, really goes out.

    with Lab() as lab:
        net = lab.two_hosts()
        ...start a server in net.server_ns...
        with Udhcpc(lab, net.client_ns, net.client_if) as client:
            lease = client.obtain()
            again = client.renew()
            client.release()

How each client renews and releases (all measured with Debian 12's packages):
- dhclient (isc-dhcp-client 4.4.3): obtain runs `dhclient -4 -1 -d` (one try, foreground) and
  leaves it running; renew stops it (by PID) and runs it again with the same lease file, which
  makes it INIT-REBOOT (a DHCPREQUEST for the address it had; event REBOOT); release stops it
  and runs `dhclient -r` with the lease file (event RELEASE, a DHCPRELEASE to the server).
  dhclient's -r and -x signal the PID in the -pf file, so every run gets a fresh pid-file path.
- udhcpc (busybox 1.35): `busybox udhcpc -f -R`; SIGUSR1 renews (event renew), SIGUSR2
  releases (event deconfig after the DHCPRELEASE), and -R also releases on SIGTERM.
  Quirk: udhcpc sends its unicast renew from a socket bound to leased-ip:68 and closes it
  right after; a server in the next namespace answers before the close, the kernel hands the
  ACK to that closing socket, and udhcpc retries after -T seconds (a broadcast renew), so the
  server may log two ACKs for one renew and the renew takes ≈ -T seconds about half the time.
- dhcpcd (dhcpcd-base 9.4.1): `dhcpcd -4 -B` (no fork); SIGUSR1 renews (event RENEW), SIGALRM
  releases and exits (events STOP, STOPPED). dhcpcd keeps its state in fixed places
  (/var/lib/dhcpcd: duid, secret, IF.lease; /run/dhcpcd: pid files, control sockets), so it
  runs in a private mount namespace with our work directory bound over /var/lib/dhcpcd and a
  tmpfs over /run: nothing lands on the host, and two labs with the same interface name do
  not collide. Its ARP probe of the offered address (≈ 5 s) is off unless `arp=True`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from tests.lab.netns import Lab
from tests.lab.processes import which

CLIENT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Environment variables a hook sees that say nothing about the lease.
_NOISE = frozenset({"PATH", "PWD", "SHLVL", "_", "OLDPWD", "EB_EVENT", "HOME", "LANG"})


class DhcpClientError(RuntimeError):
    """A client did not get (or keep, or give back) a lease in time; carries its log."""


@dataclass(frozen=True)
class Event:
    """One call of our hook by the client: its event name and the environment it passed."""

    name: str
    env: dict[str, str]
    at: float  # time.time() when the hook ran


@dataclass(frozen=True)
class Lease:
    """What a client got, as it reported it to its hook."""

    client: str  # "dhclient" | "udhcpc" | "dhcpcd"
    event: str  # the hook event that delivered it (BOUND, REBOOT, renew, ...)
    address: str
    prefix_len: int | None
    lease_time: int | None  # seconds
    router: str | None  # the first router
    server_id: str | None
    options: dict[str, str] = field(default_factory=dict)  # everything else the hook saw
    elapsed: float = 0.0  # seconds from the request to the event

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix_len if self.prefix_len is not None else 32}"


# The hook: configure the interface, then record the event atomically (write, then rename), so
# that a waiter who sees the event finds the interface configured. `EB_EVENT` is the event
# name: udhcpc passes it as $1, dhclient and dhcpcd set $reason.
_HOOK = """#!/bin/sh
PATH={path}
export PATH
event="${{1:-$reason}}"
{configure}
tmp="{events}/.tmp.$$"
{{ printf 'EB_EVENT=%s\\0' "$event"; env -0; }} > "$tmp"
mv "$tmp" "{events}/$(date +%s%N).$$"
exit 0
"""

_CONFIGURE_DHCLIENT = """case "$reason" in
PREINIT) ip link set dev "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        ip -4 addr flush dev "$interface"
    fi
    ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    if [ -n "$new_routers" ]; then
        ip -4 route replace default via "${new_routers%% *}" dev "$interface" || true
    fi ;;
EXPIRE|FAIL|RELEASE) ip -4 addr flush dev "$interface" ;;
esac"""

_CONFIGURE_UDHCPC = """case "$1" in
deconfig) ip -4 addr flush dev "$interface"; ip link set dev "$interface" up ;;
bound|renew)
    if ! ip -4 -o addr show dev "$interface" | grep -q " $ip/"; then
        ip -4 addr flush dev "$interface"
    fi
    ip -4 addr replace "$ip/$mask" dev "$interface"
    if [ -n "$router" ]; then
        ip -4 route replace default via "${router%% *}" dev "$interface" || true
    fi ;;
esac"""

_DHCLIENT_CONF = """option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, time-offset, routers, domain-name,
        domain-name-servers, domain-search, host-name, interface-mtu,
        rfc3442-classless-static-routes, ntp-servers;
"""

_DHCPCD_CONF = """option domain_name_servers, domain_name, domain_search, host_name
option classless_static_routes
option interface_mtu
require dhcp_server_identifier
noipv4ll
"""


def _first(value: str | None) -> str | None:
    return value.split()[0] if value and value.split() else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _prefix(mask: str | None) -> int | None:
    if not mask:
        return None
    if mask.isdigit():
        return int(mask)
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    except ValueError:
        return None


class DhcpClient:
    """A real DHCP client in a namespace. Subclasses know one program each."""

    name: ClassVar[str] = ""
    tools: ClassVar[tuple[str, ...]] = ()
    bound_events: ClassVar[frozenset[str]] = frozenset()
    renew_events: ClassVar[frozenset[str]] = frozenset()
    fail_events: ClassVar[frozenset[str]] = frozenset()
    configure: ClassVar[str] = ""

    def __init__(
        self,
        lab: Lab,
        ns: str,
        iface: str,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.lab = lab
        self.ns = ns
        self.iface = iface
        self.extra_args = list(extra_args)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=lab.tmpdir))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.events_dir = self.workdir / "events"
        self.events_dir.mkdir(exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.hook = self.workdir / "hook.sh"
        self.hook.write_text(
            _HOOK.format(path=CLIENT_PATH, events=self.events_dir, configure=self.configure)
        )
        self.hook.chmod(0o755)
        self.proc: subprocess.Popen[Any] | None = None
        self.lease: Lease | None = None
        self._seen = 0

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> DhcpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the three operations --------------------------------------------------------------

    def obtain(self, timeout: float = 20.0) -> Lease:
        raise NotImplementedError

    def renew(self, timeout: float = 20.0) -> Lease:
        raise NotImplementedError

    def release(self, timeout: float = 10.0) -> Event:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the client process if it still runs (no release)."""
        self._stop()

    # -- shared machinery ------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": CLIENT_PATH, "LANG": "C"}

    def _start(self, argv: Sequence[str]) -> subprocess.Popen[Any]:
        log = self.log_path.open("ab")
        try:
            self.proc = self.lab.run(
                self.ns, argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        finally:
            log.close()
        return self.proc

    def _stop(self) -> None:
        if self.proc is not None:
            self.lab.stop(self.proc)
            self.proc = None

    def _signal(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise self._error(f"cannot send signal {sig}: the client is not running")
        os.kill(self.proc.pid, sig)

    def events(self) -> list[Event]:
        """Every event recorded so far, oldest first."""
        out: list[Event] = []
        names = [p for p in self.events_dir.iterdir() if not p.name.startswith(".")]
        for path in sorted(names, key=lambda p: (int(p.name.split(".")[0]), p.name)):
            fields = path.read_bytes().split(b"\0")
            env: dict[str, str] = {}
            for raw in fields:
                key, sep, value = raw.decode("utf-8", "replace").partition("=")
                if sep:
                    env.setdefault(key, value)
            out.append(Event(env.get("EB_EVENT", ""), env, int(path.name.split(".")[0]) / 1e9))
        return out

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _error(self, message: str) -> DhcpClientError:
        tail = "\n".join(self.log().splitlines()[-40:])
        seen = [e.name for e in self.events()]
        return DhcpClientError(
            f"{self.name} on {self.iface} in {self.ns}: {message}\n"
            f"hook events: {seen}\n--- {self.name} log (tail) ---\n{tail}"
        )

    def _wait_event(
        self,
        wanted: Iterable[str],
        timeout: float,
        proc: subprocess.Popen[Any] | None = None,
        what: str = "a lease",
    ) -> Event:
        """The first new event named in `wanted`; error on a failure event, on the process
        exiting without it, or at the deadline."""
        wanted = frozenset(wanted)
        deadline = time.monotonic() + timeout
        proc = proc or self.proc
        while True:
            events = self.events()
            for event in events[self._seen :]:
                self._seen += 1
                if event.name in wanted:
                    return event
                if event.name in self.fail_events:
                    raise self._error(f"failed waiting for {what}: event {event.name}")
            exited = proc is not None and proc.poll() is not None
            if exited and len(self.events()) == self._seen:
                raise self._error(f"exited ({proc.returncode if proc else '?'}) before {what}")
            if time.monotonic() > deadline:
                raise self._error(f"no {what} within {timeout:g} s")
            time.sleep(0.05)

    def _lease_from(self, event: Event, started: float) -> Lease:
        raise NotImplementedError


class Dhclient(DhcpClient):
    """ISC dhclient: `-1` (one try), `-d` (foreground), our `-sf` hook, `-lf`/`-pf` in workdir."""

    name = "dhclient"
    tools = ("dhclient",)
    bound_events = frozenset({"BOUND", "REBOOT", "RENEW", "REBIND"})
    renew_events = frozenset({"REBOOT", "RENEW", "REBIND", "BOUND"})
    fail_events = frozenset({"FAIL", "TIMEOUT", "EXPIRE"})
    configure = _CONFIGURE_DHCLIENT

    def __init__(self, *args: Any, config: str = _DHCLIENT_CONF, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conf = self.workdir / "dhclient.conf"
        self.conf.write_text(config)
        self.leases = self.workdir / "dhclient.leases"
        self._runs = 0

    def _argv(self, *flags: str) -> list[str]:
        # A fresh pid file each run: dhclient -r/-x signal whatever PID that file names.
        self._runs += 1
        pidfile = self.workdir / f"dhclient.{self._runs}.pid"
        pidfile.unlink(missing_ok=True)
        return [
            which("dhclient") or "dhclient",
            "-4",
            *flags,
            "-v",
            "-cf",
            str(self.conf),
            "-sf",
            str(self.hook),
            "-lf",
            str(self.leases),
            "-pf",
            str(pidfile),
            *self.extra_args,
            self.iface,
        ]

    def obtain(self, timeout: float = 20.0) -> Lease:
        self._stop()
        started = time.time()
        self._start(self._argv("-1", "-d"))
        event = self._wait_event(self.bound_events, timeout)
        self.lease = self._lease_from(event, started)
        return self.lease

    def renew(self, timeout: float = 20.0) -> Lease:
        """Stop the running dhclient and run it again with the lease file (INIT-REBOOT)."""
        if self.lease is None:
            raise self._error("renew before obtain")
        self._stop()
        started = time.time()
        self._start(self._argv("-1", "-d"))
        event = self._wait_event(self.renew_events, timeout, what="a renewed lease")
        self.lease = self._lease_from(event, started)
        return self.lease

    def release(self, timeout: float = 10.0) -> Event:
        """Stop the running dhclient, then `dhclient -r` sends a DHCPRELEASE for the lease."""
        self._stop()
        proc = self._start(self._argv("-r"))
        event = self._wait_event({"RELEASE"}, timeout, proc=proc, what="the release")
        try:
            proc.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            raise self._error("dhclient -r did not exit") from None
        finally:
            self._stop()
        if proc.returncode != 0:
            raise self._error(f"dhclient -r exited {proc.returncode}")
        self.lease = None
        return event

    def _lease_from(self, event: Event, started: float) -> Lease:
        env = event.env
        return Lease(
            client=self.name,
            event=event.name,
            address=env.get("new_ip_address", ""),
            prefix_len=_prefix(env.get("new_subnet_mask")),
            lease_time=_int(env.get("new_dhcp_lease_time")),
            router=_first(env.get("new_routers")),
            server_id=env.get("new_dhcp_server_identifier"),
            options={k: v for k, v in env.items() if k not in _NOISE},
            elapsed=event.at - started,
        )


class Udhcpc(DhcpClient):
    """busybox udhcpc in the foreground: SIGUSR1 renews, SIGUSR2 releases, -R on exit."""

    name = "udhcpc"
    tools = ("busybox",)
    bound_events = frozenset({"bound"})
    renew_events = frozenset({"renew", "bound"})
    fail_events = frozenset({"leasefail", "nak"})
    configure = _CONFIGURE_UDHCPC

    def obtain(self, timeout: float = 20.0) -> Lease:
        self._stop()
        started = time.time()
        tries = max(1, int(timeout))
        argv = [
            which("busybox") or "busybox",
            "udhcpc",
            "-f",  # foreground
            "-R",  # release on exit
            "-n",  # exit if no lease
            "-i",
            self.iface,
            "-s",
            str(self.hook),
            "-t",
            str(tries),
            "-T",
            "1",
            *self.extra_args,
        ]
        self._start(argv)
        event = self._wait_event(self.bound_events, timeout)
        self.lease = self._lease_from(event, started)
        return self.lease

    def renew(self, timeout: float = 20.0) -> Lease:
        started = time.time()
        self._signal(signal.SIGUSR1)
        event = self._wait_event(self.renew_events, timeout, what="a renewed lease")
        self.lease = self._lease_from(event, started)
        return self.lease

    def release(self, timeout: float = 10.0) -> Event:
        self._signal(signal.SIGUSR2)
        event = self._wait_event({"deconfig"}, timeout, what="the release")
        self._stop()
        self.lease = None
        return event

    def _lease_from(self, event: Event, started: float) -> Lease:
        env = event.env
        return Lease(
            client=self.name,
            event=event.name,
            address=env.get("ip", ""),
            prefix_len=_prefix(env.get("mask") or env.get("subnet")),
            lease_time=_int(env.get("lease")),
            router=_first(env.get("router")),
            server_id=env.get("serverid"),
            options={k: v for k, v in env.items() if k not in _NOISE},
            elapsed=event.at - started,
        )


class Dhcpcd(DhcpClient):
    """dhcpcd 9 in the foreground (-B), IPv4 only, in a private mount namespace."""

    name = "dhcpcd"
    tools = ("dhcpcd", "unshare", "mount")
    bound_events = frozenset({"BOUND", "REBOOT", "RENEW", "REBIND"})
    renew_events = frozenset({"RENEW", "REBIND", "REBOOT", "BOUND"})
    fail_events = frozenset({"FAIL", "EXPIRE", "NAK"})
    configure = ""  # dhcpcd configures the interface itself

    def __init__(
        self, *args: Any, config: str = _DHCPCD_CONF, arp: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.conf = self.workdir / "dhcpcd.conf"
        self.conf.write_text(config + ("" if arp else "noarp\n"))
        self.state = self.workdir / "state"  # stands in for /var/lib/dhcpcd
        self.state.mkdir(exist_ok=True)

    def obtain(self, timeout: float = 20.0) -> Lease:
        self._stop()
        started = time.time()
        dhcpcd = which("dhcpcd") or "dhcpcd"
        args = " ".join(
            shlex.quote(a)
            for a in [
                dhcpcd,
                "-4",
                "-B",
                "-d",
                "-f",
                str(self.conf),
                "-c",
                str(self.hook),
                "-t",
                str(max(1, int(timeout))),
                *self.extra_args,
                self.iface,
            ]
        )
        script = (
            "set -e; "
            "mount -t tmpfs -o mode=0755,size=1m eb-dhcpcd-run /run; "
            "mkdir -p /run/dhcpcd; "
            f"mount --bind {shlex.quote(str(self.state))} /var/lib/dhcpcd; "
            f"exec {args}"
        )
        unshare = which("unshare") or "unshare"
        self._start([unshare, "--mount", "--propagation", "private", "sh", "-c", script])
        event = self._wait_event(self.bound_events, timeout)
        self.lease = self._lease_from(event, started)
        return self.lease

    def renew(self, timeout: float = 20.0) -> Lease:
        started = time.time()
        self._signal(signal.SIGUSR1)
        event = self._wait_event(self.renew_events, timeout, what="a renewed lease")
        self.lease = self._lease_from(event, started)
        return self.lease

    def release(self, timeout: float = 10.0) -> Event:
        """SIGALRM: dhcpcd sends a DHCPRELEASE, deconfigures, runs STOP and exits."""
        proc = self.proc
        self._signal(signal.SIGALRM)
        event = self._wait_event({"STOP", "RELEASE"}, timeout, what="the release")
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        self._stop()
        self.lease = None
        return event

    def _lease_from(self, event: Event, started: float) -> Lease:
        env = event.env
        return Lease(
            client=self.name,
            event=event.name,
            address=env.get("new_ip_address", ""),
            prefix_len=_int(env.get("new_subnet_cidr")) or _prefix(env.get("new_subnet_mask")),
            lease_time=_int(env.get("new_dhcp_lease_time")),
            router=_first(env.get("new_routers")),
            server_id=env.get("new_dhcp_server_identifier"),
            options={k: v for k, v in env.items() if k not in _NOISE},
            elapsed=event.at - started,
        )


CLIENTS: dict[str, type[DhcpClient]] = {c.name: c for c in (Dhclient, Udhcpc, Dhcpcd)}


def make_client(kind: str, lab: Lab, ns: str, iface: str, **kwargs: Any) -> DhcpClient:
    """A client by name: "dhclient", "udhcpc" or "dhcpcd"."""
    try:
        cls = CLIENTS[kind]
    except KeyError:
        raise ValueError(f"unknown DHCP client {kind!r}; known: {sorted(CLIENTS)}") from None
    return cls(lab, ns, iface, **kwargs)


def get_lease(kind: str, lab: Lab, ns: str, iface: str, timeout: float = 20.0) -> Lease:
    """One-shot: obtain a lease with the named client, then stop it (without releasing)."""
    with make_client(kind, lab, ns, iface) as client:
        return client.obtain(timeout)
