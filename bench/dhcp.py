#!/usr/bin/env python3
"""DHCP load: perfdhcp against Kea, dnsmasq and edgebox, in the same namespaces, one run.

A server namespace and a client namespace joined by a veth pair (created and removed here;
nothing touches a real interface). perfdhcp always acts as a relay agent: it binds port 67 on
its own address, puts that address in giaddr and sends to the server's address. So the relay
side has 10.231.1.2/24 on the link and the relay address 10.232.0.1/16 (perfdhcp `-l`), the
server has 10.231.1.1/24 and a route to 10.232.0.0/16 through the relay, and every server
serves 10.232.0.0/16 (range 10.232.0.10-10.232.234.255, ≈ 60k addresses, router 10.232.0.1,
lease time 3600 s): the relayed path, selected by giaddr.

For each rate of the ladder, in rounds that run every server once: a fresh server (empty lease
database) pinned to one core, a one-exchange probe until it answers, then `perfdhcp -4 -R 10000
-r RATE -p PERIOD` pinned to the other core. DORA/s is computed here from the exchange counts
(ACKs received / period; perfdhcp's own `Rate:` line divides by the period plus the exit wait),
and failed exchanges = 1 - ACKs / DISCOVERs sent. The result per server is the highest rate
with < 1 % failed exchanges (median over --repeat runs), and the ratios edgebox/Kea and
edgebox/dnsmasq. Each run also reports the server's CPU per exchange, how long its main thread
waited for its core, and the UDP datagrams dropped by full sockets on either side
(bench/README.md says what each tells).

    python bench/dhcp.py                                # full ladder, all three servers
    python bench/dhcp.py --servers kea,dnsmasq --quick  # smoke run: 2 rates, 2 s each
    python bench/dhcp.py --repeat 3 --json out.json     # medians of 3 (a busy machine)

Needs root, iproute2, taskset, perfdhcp (Debian: kea-admin) and the servers' packages
(kea-dhcp4-server, dnsmasq-base). A server that is missing, or an edgebox whose `serve` refuses
the `dhcp` configuration, is reported as not available instead of failing the run. The run is
bounded (--deadline) and removes everything it created, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.lab import Lab, LineWatcher, TwoHosts, require_root_and_tools, which  # noqa: E402

SERVER_ADDR = "10.231.1.1/24"  # the server's own interface
RELAY_LINK_ADDR = "10.231.1.2/24"  # perfdhcp's side of the link
GIADDR = "10.232.0.1"  # perfdhcp's relay address (-l): the giaddr of every request
RELAYED_CIDR = "10.232.0.0/16"
RELAYED_MASK = "255.255.0.0"
POOL = ("10.232.0.10", "10.232.234.255")  # 60,150 addresses: enough for 10k clients
ROUTER = GIADDR
LEASE_TIME = 3600

DEFAULT_RATES = (100, 250, 500, 1000, 2000, 4000, 6000, 8000, 10000, 12000)
QUICK_RATES = (500, 2000)
SERVERS = ("kea", "dnsmasq", "edgebox")
FAIL_THRESHOLD_PCT = 1.0


class Unavailable(Exception):
    """The server cannot be benchmarked here (not installed, not implemented, refused)."""


# -- perfdhcp --------------------------------------------------------------------------------


@dataclass
class RunResult:
    server: str
    rate: int
    period: float
    discovers: int = 0
    offers: int = 0
    requests: int = 0
    acks: int = 0
    perfdhcp_rc: int | None = None
    perfdhcp_rate_line: float | None = None
    server_cpu_s: float | None = None  # the server's user + system CPU during perfdhcp's run
    server_wait_s: float | None = None  # time its main thread was runnable but not running
    # Datagrams the kernel dropped because a UDP socket's buffer was full (UdpRcvbufErrors):
    # in the client namespace that is perfdhcp's own socket, replies the server did send.
    client_socket_drops: int | None = None
    server_socket_drops: int | None = None  # a server's UDP socket (not Kea's raw one)
    note: str = ""

    @property
    def dora_per_s(self) -> float:
        return self.acks / self.period if self.period else 0.0

    @property
    def offered_per_s(self) -> float:
        return self.discovers / self.period if self.period else 0.0

    @property
    def cpu_us_per_dora(self) -> float | None:
        """Server CPU per completed exchange: what a DORA costs the server, whatever the load
        beside it (unlike DORA/s, which another busy process on its core drags down)."""
        if self.server_cpu_s is None or not self.acks:
            return None
        return 1e6 * self.server_cpu_s / self.acks

    @property
    def failed_pct(self) -> float:
        if self.discovers == 0:
            return 100.0
        return 100.0 * max(0, self.discovers - self.acks) / self.discovers

    @property
    def generator_short(self) -> bool:
        """perfdhcp sent noticeably fewer DISCOVERs than asked: it ran out of its core."""
        return self.discovers < 0.97 * self.rate * self.period


_SECTION = re.compile(
    r"\*\*\*Statistics for: (?P<name>[A-Z-]+)\*\*\*(?P<body>.*?)(?=\*\*\*|\Z)", re.S
)


def parse_perfdhcp(text: str) -> dict[str, dict[str, int]]:
    """{'DISCOVER-OFFER': {'sent': n, 'received': n, 'drops': n, 'orphans': n}, ...}."""
    out: dict[str, dict[str, int]] = {}
    for match in _SECTION.finditer(text):
        body = match.group("body")
        counts: dict[str, int] = {}
        for key, label in (
            ("sent", "sent packets"),
            ("received", "received packets"),
            ("drops", "drops"),
            ("orphans", "orphans"),
        ):
            found = re.search(rf"^{label}: (\d+)", body, re.M)
            if found:
                counts[key] = int(found.group(1))
        out[match.group("name")] = counts
    return out


def perfdhcp_argv(rate: int, period: int, clients: int, wait_us: int, threads: str) -> list[str]:
    """perfdhcp as a relay: -l is its relay address (giaddr, and it binds port 67 there); the
    server address is required with -l ADDRESS (only -l INTERFACE defaults to broadcast).
    Without -r perfdhcp sends as fast as it can (-n does not bound that); -p takes whole
    seconds; -W (µs) waits for answers in flight after the period."""
    return [
        *(which("perfdhcp") or "perfdhcp", "-4", "-l", GIADDR, "-g", threads),
        *("-R", str(clients), "-r", str(rate), "-p", str(period), "-W", str(wait_us)),
        _ip(SERVER_ADDR),
    ]


def _ip(cidr: str) -> str:
    return cidr.split("/", maxsplit=1)[0]


def _pin(cpu: int | None, argv: Sequence[str]) -> list[str]:
    if cpu is None:
        return list(argv)
    return [which("taskset") or "taskset", "-c", str(cpu), *argv]


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Bench:
    lab: Lab
    net: TwoHosts
    args: argparse.Namespace
    workdir: Path

    def probe(self, proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
        """One perfdhcp exchange at a time until the server answers (or dies, or timeout)."""
        deadline = time.monotonic() + timeout
        # 5 exchanges in 1 s from one client: rc 0 only if every exchange completed.
        argv = _pin(self.args.client_cpu, perfdhcp_argv(5, 1, 1, 300_000, "single"))
        while True:
            if proc.poll() is not None:
                raise Unavailable(f"exited with {proc.returncode} before answering")
            try:
                out = self.lab.exec(self.net.client_ns, argv, timeout=5, check=False)
                if out.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"no DHCP answer within {timeout:g} s")
            time.sleep(0.2)


class Server:
    name = ""
    tools: tuple[str, ...] = ()

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.proc: subprocess.Popen[Any] | None = None

    def check(self) -> None:
        missing = [t for t in self.tools if which(t) is None]
        if missing:
            raise Unavailable(f"not installed ({', '.join(missing)} missing)")

    def start(self, run_dir: Path) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            self.bench.lab.stop(self.proc, grace=5.0)
            self.proc = None

    def log_tail(self, run_dir: Path, lines: int = 5) -> str:
        logs = sorted(run_dir.glob("*.log"))
        text = "\n".join(p.read_text(errors="replace") for p in logs)
        return " | ".join(text.strip().splitlines()[-lines:])


class Kea(Server):
    name = "kea"
    tools = ("kea-dhcp4",)

    def start(self, run_dir: Path) -> None:
        b = self.bench
        config = {
            "Dhcp4": {
                "interfaces-config": {
                    "interfaces": [b.net.server_if],
                    "dhcp-socket-type": "raw",
                },
                "lease-database": {"type": "memfile", "name": str(run_dir / "kea-leases4.csv")},
                "multi-threading": {"enable-multi-threading": False},
                "valid-lifetime": LEASE_TIME,
                "subnet4": [
                    {
                        "id": 1,
                        "subnet": RELAYED_CIDR,
                        "pools": [{"pool": f"{POOL[0]} - {POOL[1]}"}],
                        "option-data": [{"name": "routers", "data": ROUTER}],
                    }
                ],
                "loggers": [
                    {
                        "name": "kea-dhcp4",
                        "output_options": [{"output": str(run_dir / "kea.log")}],
                        "severity": "WARN",
                    }
                ],
            }
        }
        path = run_dir / "kea-dhcp4.json"
        path.write_text(json.dumps(config, indent=2))
        env = dict(os.environ, KEA_PIDFILE_DIR=str(run_dir), KEA_LOCKFILE_DIR=str(run_dir))
        with (run_dir / "kea-stdout.log").open("wb") as out:
            self.proc = b.lab.run(
                b.net.server_ns,
                _pin(b.args.server_cpu, [which("kea-dhcp4") or "kea-dhcp4", "-c", str(path)]),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        b.probe(self.proc)


class Dnsmasq(Server):
    name = "dnsmasq"
    tools = ("dnsmasq",)

    def start(self, run_dir: Path) -> None:
        b = self.bench
        argv = [
            which("dnsmasq") or "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            f"--interface={b.net.server_if}",
            "--bind-interfaces",
            f"--dhcp-range={POOL[0]},{POOL[1]},{RELAYED_MASK},{LEASE_TIME}",
            f"--dhcp-option=option:router,{ROUTER}",
            f"--dhcp-leasefile={run_dir / 'dnsmasq.leases'}",
            "--dhcp-lease-max=100000",  # the default, 1000, refuses the 1001st client
            "--no-ping",  # else 3 s of ping per new lease
            "--quiet-dhcp",  # no log line per packet (Kea runs at WARN too)
            f"--log-facility={run_dir / 'dnsmasq.log'}",
            f"--pid-file={run_dir / 'dnsmasq.pid'}",
        ]
        with (run_dir / "dnsmasq-stdout.log").open("wb") as out:
            self.proc = b.lab.run(
                b.net.server_ns,
                _pin(b.args.server_cpu, argv),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        b.probe(self.proc)


class Edgebox(Server):
    """`python -m edgebox serve` in the root namespace; it opens its DHCP socket in the lab's
    server namespace itself (config `dhcp.interfaces[].netns`)."""

    name = "edgebox"

    def check(self) -> None:
        if not (ROOT / "edgebox" / "__main__.py").exists():
            raise Unavailable("not available yet (no edgebox package)")

    def start(self, run_dir: Path) -> None:
        b = self.bench
        config = run_dir / "edgebox.yaml"
        config.write_text(
            f"data_dir: {run_dir / 'data'}\n"
            f"api: {{host: 127.0.0.1, port: {free_port()}}}\n"
            f"machine_http: {{host: 127.0.0.1, port: {free_port()}}}\n"
            "dhcp:\n"
            "  interfaces:\n"
            f"    - {{name: {b.net.server_if}, netns: {b.net.server_ns}, mode: server}}\n"
            "  subnets:\n"
            f"    - cidr: {RELAYED_CIDR}\n"
            f"      ranges: [{{start: {POOL[0]}, end: {POOL[1]}}}]\n"
            f"      router: {ROUTER}\n"
            f"      lease_time: {LEASE_TIME}\n"
        )
        argv = _pin(
            b.args.server_cpu, [sys.executable, "-m", "edgebox", "serve", "--config", str(config)]
        )
        with (run_dir / "edgebox-stdout.log").open("wb") as out:
            self.proc = b.lab.run(
                None, argv, cwd=str(ROOT), stdout=out, stderr=subprocess.PIPE, text=True
            )
        assert self.proc.stderr is not None
        watcher = LineWatcher(self.proc.stderr, tee=run_dir / "edgebox.log")
        ready = watcher.wait_for(r"edgebox ready", timeout=30)
        if ready is None:
            watcher.join(2)
            text = watcher.text()
            if re.search(r"\bdhcp\b.*unknown key|unknown key.*\bdhcp\b", text):
                raise Unavailable("not available yet (edgebox serve refuses the dhcp key)")
            last = text.strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"not available yet (did not start: {last[0][:160]})")
        try:
            b.probe(self.proc)
        except Unavailable as exc:
            problem = watcher.wait_for(r"dhcp .*(cannot|error|fail)", timeout=0)
            detail = problem[:200] if problem else str(exc)
            raise Unavailable(f"not available yet ({detail})") from None


SERVER_CLASSES: dict[str, type[Server]] = {c.name: c for c in (Kea, Dnsmasq, Edgebox)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the ladder ----------------------------------------------------------------------------


@dataclass
class RateSummary:
    rate: int
    runs: list[RunResult] = field(default_factory=list)
    skipped: str = ""

    @property
    def dora_per_s(self) -> float:
        return statistics.median(r.dora_per_s for r in self.runs) if self.runs else 0.0

    @property
    def failed_pct(self) -> float:
        return statistics.median(r.failed_pct for r in self.runs) if self.runs else 100.0

    @property
    def passed(self) -> bool:
        return bool(self.runs) and self.failed_pct < FAIL_THRESHOLD_PCT

    @property
    def cpu_us_per_dora(self) -> float | None:
        figures = [c for r in self.runs if (c := r.cpu_us_per_dora) is not None]
        return statistics.median(figures) if figures else None


@dataclass
class ServerSummary:
    name: str
    rates: list[RateSummary] = field(default_factory=list)
    unavailable: str = ""

    @property
    def best(self) -> RateSummary | None:
        passed = [r for r in self.rates if r.passed]
        return max(passed, key=lambda r: r.rate) if passed else None

    @property
    def peak(self) -> float:
        return max((r.dora_per_s for r in self.rates if r.runs), default=0.0)


def one_run(bench: Bench, server: Server, rate: int, rep: int) -> RunResult:
    args = bench.args
    run_dir = bench.workdir / f"{server.name}-{rate}-{rep}"
    run_dir.mkdir()
    result = RunResult(server.name, rate, args.period)
    try:
        server.start(run_dir)
        argv = _pin(
            args.client_cpu,
            perfdhcp_argv(
                rate, args.period, args.clients, args.exit_wait_us, args.perfdhcp_threads
            ),
        )
        limit = args.period + args.exit_wait_us / 1e6 + 30
        drops_before = socket_drops(bench)
        cpu_before, wait_before = process_cpu_seconds(server.proc), run_queue_wait(server.proc)
        try:
            out = bench.lab.exec(bench.net.client_ns, argv, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            result.note = f"perfdhcp did not finish within {limit:g} s"
            return result
        cpu_after, wait_after = process_cpu_seconds(server.proc), run_queue_wait(server.proc)
        if cpu_before is not None and cpu_after is not None:
            result.server_cpu_s = cpu_after - cpu_before
        if wait_before is not None and wait_after is not None:
            result.server_wait_s = wait_after - wait_before
        drops_after = socket_drops(bench)
        if drops_before is not None and drops_after is not None:
            result.client_socket_drops = drops_after[1] - drops_before[1]
            result.server_socket_drops = drops_after[0] - drops_before[0]
        (run_dir / "perfdhcp.out").write_text(out.stdout + out.stderr)
        result.perfdhcp_rc = out.returncode
        stats = parse_perfdhcp(out.stdout)
        do, ra = stats.get("DISCOVER-OFFER", {}), stats.get("REQUEST-ACK", {})
        result.discovers, result.offers = do.get("sent", 0), do.get("received", 0)
        result.requests, result.acks = ra.get("sent", 0), ra.get("received", 0)
        rate_line = re.search(r"^Rate: ([\d.]+)", out.stdout, re.M)
        result.perfdhcp_rate_line = float(rate_line.group(1)) if rate_line else None
        if not do:
            result.note = f"perfdhcp rc={out.returncode}: {(out.stderr or out.stdout)[-200:]}"
        if server.proc is not None and server.proc.poll() is not None:
            result.note = f"server exited ({server.proc.returncode}): {server.log_tail(run_dir)}"
        return result
    finally:
        server.stop()


def process_cpu_seconds(proc: subprocess.Popen[Any] | None) -> float | None:
    """utime + stime of a running process and all its threads (`/proc/PID/stat`).

    The servers are started through `ip netns exec` and `taskset`, which both exec, so the
    PID is the server's own. Forked children are not counted (none of the three forks).
    """
    if proc is None or proc.poll() is not None:
        return None
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def socket_drops(bench: Bench) -> tuple[int, int] | None:
    """UdpRcvbufErrors of the server and the client namespace (`nstat`, absolute values)."""
    counts = []
    for ns in (bench.net.server_ns, bench.net.client_ns):
        out = bench.lab.exec(ns, ["nstat", "-az", "UdpRcvbufErrors"], check=False).stdout
        found = re.search(r"^UdpRcvbufErrors\s+(\d+)", out, re.M)
        if found is None:
            return None
        counts.append(int(found.group(1)))
    return counts[0], counts[1]


def run_queue_wait(proc: subprocess.Popen[Any] | None) -> float | None:
    """Seconds the server's main thread has spent runnable but waiting for a CPU
    (`/proc/PID/schedstat`, second field). On a shared machine this is mostly the time other
    work took from the server's core (for edgebox also its own database thread, which
    shares the core): a run with much of it is a run to repeat."""
    if proc is None or proc.poll() is not None:
        return None
    try:
        return int(Path(f"/proc/{proc.pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def run_ladder(
    bench: Bench, summaries: list[ServerSummary], rates: Sequence[int], deadline: float
) -> None:
    """Every server at each rate of the ladder, in rounds: at a rate, each round runs every
    server once (a fresh process each time), so that the load that other work puts on the
    machine meanwhile falls on all of them alike, not on whichever server ran last. Fills
    ``summaries`` as it goes (an interrupted run still reports what it measured)."""
    args = bench.args
    servers: dict[str, Server] = {}
    for summary in summaries:
        server = SERVER_CLASSES[summary.name](bench)
        try:
            server.check()
        except Unavailable as exc:
            summary.unavailable = str(exc)
            continue
        servers[summary.name] = server
    failures_in_a_row = dict.fromkeys(servers, 0)
    for rate in rates:
        for summary in summaries:
            if not summary.unavailable:
                summary.rates.append(RateSummary(rate))
        for rep in range(args.repeat):
            for summary in summaries:
                if summary.unavailable:
                    continue
                rs = summary.rates[-1]
                if failures_in_a_row[summary.name] >= args.stop_after:
                    rs.skipped = f"skipped after {failures_in_a_row[summary.name]} failing rates"
                    continue
                if time.monotonic() > deadline:
                    rs.skipped = "skipped: --deadline reached"
                    continue
                _run_once(bench, servers[summary.name], summary, rs, rep)
        for summary in summaries:
            if not summary.unavailable and summary.rates[-1].runs:
                rs = summary.rates[-1]
                failures = failures_in_a_row[summary.name]
                failures_in_a_row[summary.name] = 0 if rs.passed else failures + 1


def _run_once(
    bench: Bench, server: Server, summary: ServerSummary, rs: RateSummary, rep: int
) -> None:
    args, name, rate = bench.args, summary.name, rs.rate
    try:
        result = one_run(bench, server, rate, rep)
    except Unavailable as exc:
        if not any(r.runs for r in summary.rates):
            # It never ran here: not installed, not implemented, refused its config.
            summary.unavailable = str(exc)
            summary.rates.clear()
            return
        # It ran before: a start that fails later counts as a failed run.
        result = RunResult(name, rate, args.period, note=f"did not start: {exc}")
    rs.runs.append(result)
    log(
        f"{name:8} rate {rate:6}/s run {rep + 1}/{args.repeat}: "
        f"{result.dora_per_s:8.1f} DORA/s, {result.failed_pct:6.2f} % failed "
        f"(sent {result.discovers} DISCOVER, got {result.acks} ACK"
        + (
            f"; server CPU {result.cpu_us_per_dora:.1f} µs/DORA"
            if result.cpu_us_per_dora is not None
            else ""
        )
        + (
            f", waited {100 * result.server_wait_s / args.period:.0f} % for its core)"
            if result.server_wait_s is not None
            else ")"
        )
        + (
            f" [UDP socket drops: server {result.server_socket_drops}, "
            f"perfdhcp {result.client_socket_drops}]"
            if result.client_socket_drops or result.server_socket_drops
            else ""
        )
        + (" [perfdhcp short of its rate]" if result.generator_short else "")
        + (f" [{result.note}]" if result.note else "")
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- report ----------------------------------------------------------------------------------


def _cell(rs: RateSummary | None) -> str:
    if rs is None or not rs.runs:
        return "—" if rs is None or not rs.skipped else "skipped"
    short = "*" if any(r.generator_short for r in rs.runs) else " "
    return f"{rs.dora_per_s:8.0f}{short}{rs.failed_pct:6.2f}%"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}"


def report(summaries: list[ServerSummary], rates: Sequence[int], args: argparse.Namespace) -> str:
    lines = [
        f"DHCP load (perfdhcp as a relay, {args.clients} clients, {args.period:g} s per rate, "
        f"median of {args.repeat}; server on CPU {args.server_cpu}, perfdhcp on CPU "
        f"{args.client_cpu}). Cell: DORA/s and % failed exchanges; * = perfdhcp could not "
        f"send at the asked rate.",
        "",
    ]
    width = 17
    header = f"{'rate/s':>7} | " + " | ".join(f"{s.name:>{width}}" for s in summaries)
    lines += [header, "-" * len(header)]
    for rate in rates:
        cells = []
        for s in summaries:
            if s.unavailable:
                cells.append(f"{'n/a':>{width}}")
                continue
            rs = next((r for r in s.rates if r.rate == rate), None)
            cells.append(f"{_cell(rs):>{width}}")
        lines.append(f"{rate:>7} | " + " | ".join(cells))
    lines += ["", f"highest rate with < {FAIL_THRESHOLD_PCT:g} % failed exchanges:"]
    best: dict[str, float | None] = {}
    peak: dict[str, float | None] = {}
    for s in summaries:
        if s.unavailable:
            lines.append(f"  {s.name:8} {s.unavailable}")
            best[s.name] = peak[s.name] = None
            continue
        b = s.best
        best[s.name] = b.dora_per_s if b else None
        peak[s.name] = s.peak or None
        if b:
            cpu = b.cpu_us_per_dora
            cpu_text = f", server CPU {cpu:.1f} µs/DORA" if cpu is not None else ""
            lines.append(
                f"  {s.name:8} {b.rate:>6}/s  ({b.dora_per_s:.0f} DORA/s, "
                f"{b.failed_pct:.2f} % failed{cpu_text}); peak {s.peak:.0f} DORA/s"
            )
        else:
            lowest = min((r.rate for r in s.rates if r.runs), default=None)
            lines.append(
                f"  {s.name:8} none (fails at {lowest}/s already); peak {s.peak:.0f} DORA/s"
                if lowest
                else f"  {s.name:8} no run"
            )
    if "edgebox" in best and ("kea" in best or "dnsmasq" in best):
        lines.append("")
        for other in ("kea", "dnsmasq"):
            if other in best:
                lines.append(
                    f"  edgebox/{other:8} sustained {_ratio(best['edgebox'], best[other])}, "
                    f"peak {_ratio(peak['edgebox'], peak[other])}"
                )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list of kea,dnsmasq,edgebox")
    p.add_argument("--rates", default=None, help="comma list of rates (exchanges/s)")
    p.add_argument("--period", type=int, default=None, help="seconds per rate (default 10)")
    p.add_argument("--clients", type=int, default=10000, help="simulated clients (-R)")
    p.add_argument("--repeat", type=int, default=1, help="runs per rate; the median counts")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rates, 2 s each")
    p.add_argument("--stop-after", type=int, default=2, help="skip higher rates after N failing")
    p.add_argument("--exit-wait-us", type=int, default=500_000, help="perfdhcp -W (µs)")
    p.add_argument("--perfdhcp-threads", choices=("single", "multi"), default="single")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--deadline", type=float, default=1800, help="stop starting runs after N s")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.rates = args.rates or ",".join(map(str, QUICK_RATES))
        args.period = args.period or 2
    args.period = args.period or 10
    args.rate_list = [int(r) for r in (args.rates or ",".join(map(str, DEFAULT_RATES))).split(",")]
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.server_list if s not in SERVER_CLASSES]
    if unknown:
        p.error(f"unknown server(s) {unknown}; known: {', '.join(SERVERS)}")
    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpu not in cpus or args.client_cpu not in cpus:
        log(f"warning: CPUs {cpus} available; not pinning")
        args.server_cpu = args.client_cpu = None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = require_root_and_tools("ip", "nstat", "taskset", "perfdhcp")
    if missing:
        print(f"bench/dhcp.py needs root and tools; missing: {', '.join(missing)}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    deadline = started + args.deadline
    summaries: list[ServerSummary] = []
    try:
        with Lab() as lab:
            net = lab.two_hosts(server_addr=SERVER_ADDR, client_addr=RELAY_LINK_ADDR)
            lab.addr(net.client_ns, net.client_if, f"{GIADDR}/16")
            lab.route(net.server_ns, RELAYED_CIDR, _ip(RELAY_LINK_ADDR))
            bench = Bench(lab, net, args, lab.tmpdir)
            summaries.extend(ServerSummary(name) for name in args.server_list)
            run_ladder(bench, summaries, args.rate_list, deadline)
    except KeyboardInterrupt:
        log("interrupted: the lab is removed; partial results follow")
    finally:
        signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
    print(report(summaries, args.rate_list, args))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(to_json(summaries, args), indent=2))
    return 0


def to_json(summaries: list[ServerSummary], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "clients": args.clients,
        "period_s": args.period,
        "repeat": args.repeat,
        "servers": [
            {
                "name": s.name,
                "unavailable": s.unavailable,
                "best_rate": s.best.rate if s.best else None,
                "best_dora_per_s": s.best.dora_per_s if s.best else None,
                "peak_dora_per_s": s.peak,
                "rates": [
                    {
                        "rate": r.rate,
                        "dora_per_s": r.dora_per_s,
                        "failed_pct": r.failed_pct,
                        "cpu_us_per_dora": r.cpu_us_per_dora,
                        "skipped": r.skipped,
                        "runs": [
                            asdict(run)
                            | {
                                "dora_per_s": run.dora_per_s,
                                "failed_pct": run.failed_pct,
                                "cpu_us_per_dora": run.cpu_us_per_dora,
                            }
                            for run in r.runs
                        ],
                    }
                    for r in s.rates
                ],
            }
            for s in summaries
        ],
    }


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
