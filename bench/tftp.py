#!/usr/bin/env python3
"""TFTP throughput: many clients fetching a boot loader at once from edgebox, tftpd-hpa, atftpd.

A server namespace and a client namespace joined by a veth pair (created and removed here;
nothing touches a real interface). Each server in turn listens on port 69 of the server side,
pinned to one core; N clients (default 100) in the client namespace, pinned to the other core,
fetch the same file at once. Two scenarios:
- `blksize`: curl `--tftp-blksize 1468` (lock-step, RFC 2348) against edgebox, tftpd-hpa and
  atftpd;
- `window`: atftp `--option "blksize 1468" --option "windowsize 8"` (RFC 7440) against edgebox
  and atftpd (the only peer with windowsize; tftpd-hpa would ignore it).

Clients start together: each waits in `flock -s` on a lock file the bench holds exclusively,
so process start-up is outside the timed part; the clock runs from the release of the lock to
the exit of the last client. Aggregate MiB/s = bytes of byte-identical copies / that time.
Server CPU per MiB, two ways: from a cgroup made for the server (cgroup v1 cpuacct.usage, or
v2 cpu.stat), which holds the server and every process it forks, and from the server
process's utime + stime (+ reaped children) in /proc/PID/stat. The second cannot see
tftpd-hpa's per-transfer children (it ignores SIGCHLD, so they are reaped automatically and
never reach its cutime), so the ratios use the cgroup figures. Runs go in rounds: each round
runs every server once, with a fresh server process, so a change in the machine's background
load hits all servers alike; the median of the --repeat rounds counts.

    python bench/tftp.py                          # 100 clients, 3 runs per cell, ipxe.efi
    python bench/tftp.py --quick                  # smoke run: 10 clients, 1 run
    python bench/tftp.py --file snponly.efi --clients 50 --servers edgebox,tftpd-hpa

Needs root and what scripts/install-lab-packages installs (iproute2, util-linux, curl, atftp,
the loaders). The peer servers tftpd-hpa (`in.tftpd`) and atftpd are unpacked from their .debs
into the run's temporary directory (tests/lab/debian_unpack.py): installed, each would start a
system-wide daemon, and the two conflict in apt. A missing server shows as "not available".
The run is bounded (--deadline) and removes everything it created, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.lab import Lab, LineWatcher, TwoHosts, require_root_and_tools, which  # noqa: E402
from tests.lab.debian_unpack import UnpackError, unpacked_program  # noqa: E402

SERVER_ADDR = "10.231.70.1/24"
CLIENT_ADDR = "10.231.70.2/24"
LOADERS = ("/usr/lib/ipxe/snponly.efi", "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi")
SERVERS = ("edgebox", "tftpd-hpa", "atftpd")
SCENARIOS = {"blksize": ("edgebox", "tftpd-hpa", "atftpd"), "window": ("edgebox", "atftpd")}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


class Unavailable(Exception):
    """The server cannot be benchmarked here (not installed, does not start)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ip(cidr: str) -> str:
    return cidr.split("/", maxsplit=1)[0]


def _pin(cpu: int | None, argv: Sequence[str]) -> list[str]:
    return list(argv) if cpu is None else [which("taskset") or "taskset", "-c", str(cpu), *argv]


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process (all its threads, and reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


class CpuCgroup:
    """A cgroup holding one server and every process it forks, for its total CPU time.

    cgroup v1 `cpuacct` (cpuacct.usage, ns) where it is mounted, else cgroup v2 (cpu.stat
    usage_usec). A forked child's time is charged while it runs, so tftpd-hpa's per-transfer
    children are counted too. Created per server and removed when it has stopped.
    """

    BASES = (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, name: str, pid: int) -> CpuCgroup | None:
        for base in cls.BASES:
            usage = "cpuacct.usage" if (base / "cpuacct.usage").exists() else "cpu.stat"
            if not (base / usage).exists():
                continue
            path = base / name
            try:
                path.mkdir()
                (path / "cgroup.procs").write_text(f"{pid}\n")
            except OSError as exc:
                log(f"cannot use cgroup {path}: {exc}")
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(path)
        return None

    def seconds(self) -> float:
        usage = self.path / "cpuacct.usage"
        if usage.exists():
            return int(usage.read_text()) / 1e9
        for line in (self.path / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
        return 0.0

    def remove(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:  # EBUSY until the last process has been reaped
                if time.monotonic() > deadline:
                    log(f"could not remove cgroup {self.path}: {exc}")
                    return
                time.sleep(0.05)


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Bench:
    lab: Lab
    net: TwoHosts
    args: argparse.Namespace
    workdir: Path
    root: Path


class Server:
    name = ""
    # tftpd-hpa forks a process per transfer and ignores SIGCHLD, so its children are reaped
    # automatically and their CPU time never reaches its cutime: only the cgroup sees it.
    forks = False

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.proc: subprocess.Popen[Any] | None = None
        self.cgroup: CpuCgroup | None = None

    def start(self) -> subprocess.Popen[Any]:
        raise NotImplementedError

    def launch(self) -> None:
        self.proc = self.start()
        # Before the first request, so every child it forks is in the cgroup too.
        self.cgroup = CpuCgroup.create(f"{self.bench.lab.prefix}-{self.name}", self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            self.bench.lab.stop(self.proc)
            self.proc = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None

    def cgroup_seconds(self) -> float:
        return self.cgroup.seconds() if self.cgroup is not None else float("nan")

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Fetch the probe file until it arrives (the server is listening and serving)."""
        b = self.bench
        out = b.workdir / "probe.out"
        argv = [
            "curl",
            "-sS",
            "--max-time",
            "2",
            "-o",
            str(out),
            f"tftp://{_ip(SERVER_ADDR)}/probe",
        ]
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise Unavailable(f"{self.name} exited with {self.proc.returncode}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                b.lab.exec(b.net.client_ns, argv, timeout=5, check=False)
                if out.exists() and out.read_bytes() == b"probe\n":
                    out.unlink()
                    return
            if time.monotonic() > deadline:
                raise Unavailable(f"{self.name} did not serve within {timeout:g} s")
            time.sleep(0.2)


class Edgebox(Server):
    """This script's `--serve-edgebox` mode: the TftpListener, in the root namespace, opening
    its sockets in the server namespace itself (as `edgebox serve` does)."""

    name = "edgebox"

    def start(self) -> subprocess.Popen[Any]:
        b = self.bench
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-edgebox",
            str(b.root),
            "--interface",
            b.net.server_if,
            "--netns",
            b.net.server_ns,
        ]
        log_path = b.workdir / "edgebox.log"
        self.proc = b.lab.run(
            None,
            _pin(b.args.server_cpu, argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        watcher = LineWatcher(self.proc.stderr, tee=log_path)
        if watcher.wait_for("tftp listening", timeout=15) is None:
            raise Unavailable(f"edgebox did not start: {watcher.text()[-500:]}")
        return self.proc


class TftpdHpa(Server):
    name = "tftpd-hpa"
    forks = True

    def start(self) -> subprocess.Popen[Any]:
        b = self.bench
        try:
            tftpd = unpacked_program("tftpd-hpa", "usr/sbin/in.tftpd", b.workdir)
        except UnpackError as exc:
            raise Unavailable(str(exc)) from None
        argv = [str(tftpd), "-L", "-s", str(b.root), "-a", f"{_ip(SERVER_ADDR)}:69"]
        self.proc = b.lab.run(
            b.net.server_ns,
            _pin(b.args.server_cpu, argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self.proc


class Atftpd(Server):
    name = "atftpd"

    def binary(self) -> str:
        try:
            return str(unpacked_program("atftpd", "usr/sbin/atftpd", self.bench.workdir))
        except UnpackError as exc:
            raise Unavailable(str(exc)) from None

    def start(self) -> subprocess.Popen[Any]:
        b = self.bench
        argv = [
            *(self.binary(), "--daemon", "--no-fork", "--logfile", str(b.workdir / "atftpd.log")),
            *("--port", "69", "--bind-address", _ip(SERVER_ADDR), "--maxthread", "512"),
            str(b.root),
        ]
        self.proc = b.lab.run(
            b.net.server_ns,
            _pin(b.args.server_cpu, argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self.proc


SERVER_CLASSES: dict[str, type[Server]] = {
    "edgebox": Edgebox,
    "tftpd-hpa": TftpdHpa,
    "atftpd": Atftpd,
}


# -- runs --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    scenario: str
    server: str
    clients: int
    size: int
    seconds: float = 0.0
    cpu: float = 0.0  # the server process (and reaped children), /proc/PID/stat
    group_cpu: float = 0.0  # the server and all it forked, from its cgroup
    ok: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def mib(self) -> float:
        return self.ok * self.size / MIB

    @property
    def mib_per_s(self) -> float:
        return self.mib / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_mib(self) -> float:
        return self.cpu / self.mib if self.mib else float("nan")

    @property
    def group_cpu_per_mib(self) -> float:
        return self.group_cpu / self.mib if self.mib else float("nan")


def client_argv(scenario: str, name: str, out: Path) -> list[str]:
    server = _ip(SERVER_ADDR)
    if scenario == "blksize":
        return [
            "curl",
            "-sS",
            "--max-time",
            "60",
            "--tftp-blksize",
            "1468",
            "-o",
            str(out),
            f"tftp://{server}/{name}",
        ]
    return [
        *("atftp", "--get", "-r", name, "-l", str(out)),
        *("--option", "blksize 1468", "--option", "windowsize 8", server),
    ]


def _wait_blocked_in_flock(procs: Sequence[subprocess.Popen[Any]], timeout: float) -> None:
    """Until every client process has become `flock` and sleeps on the lock."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending:
        still = []
        for proc in pending:
            try:
                comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
                state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue  # exited already (it will show as a failure)
            if comm != "flock" or state != "S":
                still.append(proc)
        pending = still
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} clients did not reach the start line")
        time.sleep(0.02)


def one_run(bench: Bench, server: Server, scenario: str, rep: int) -> RunResult:
    args, lab, net = bench.args, bench.lab, bench.net
    expected = (bench.root / args.file).read_bytes()
    result = RunResult(scenario, server.name, args.clients, len(expected))
    outdir = bench.workdir / f"out-{scenario}-{server.name}-{rep}"
    outdir.mkdir()
    lock = bench.workdir / "start.lock"
    flock = which("flock") or "flock"
    procs: list[tuple[Path, subprocess.Popen[Any]]] = []
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for i in range(args.clients):
            out = outdir / f"{i}.bin"
            argv = _pin(
                args.client_cpu, [flock, "-s", str(lock), *client_argv(scenario, args.file, out)]
            )
            procs.append(
                (
                    out,
                    lab.run(net.client_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
                )
            )
        _wait_blocked_in_flock([p for _, p in procs], timeout=60)
        assert server.proc is not None
        cpu_before = cpu_seconds(server.proc.pid)
        group_before = server.cgroup_seconds()
        started = time.monotonic()
        fcntl.flock(held, fcntl.LOCK_UN)
        deadline = started + args.run_timeout
        for out, proc in procs:
            try:
                _, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                lab.stop(proc)
                result.errors.append("timed out")
                continue
            if proc.returncode != 0:
                result.errors.append(
                    err.decode(errors="replace").strip()[-200:] or f"rc {proc.returncode}"
                )
            elif not out.exists() or out.read_bytes() != expected:
                result.errors.append("content differs")
            else:
                result.ok += 1
        result.seconds = time.monotonic() - started
    for _, proc in procs:
        with contextlib.suppress(ValueError):
            lab.processes.remove(proc)
    result.group_cpu = server.cgroup_seconds() - group_before
    result.cpu = cpu_seconds(server.proc.pid) - cpu_before
    shutil.rmtree(outdir, ignore_errors=True)
    return result


@dataclass
class Cell:
    scenario: str
    server: str
    runs: list[RunResult] = field(default_factory=list)
    unavailable: str = ""
    forks: bool = False

    @property
    def mib_per_s(self) -> float | None:
        good = [r.mib_per_s for r in self.runs if not r.errors]
        return statistics.median(good) if good else None

    @property
    def cpu_per_mib(self) -> float | None:
        good = [r.cpu_per_mib for r in self.runs if not r.errors]
        return statistics.median(good) if good and not self.forks else None

    @property
    def group_cpu_per_mib(self) -> float | None:
        good = [r.group_cpu_per_mib for r in self.runs if not r.errors]
        return statistics.median(good) if good and not any(map(math.isnan, good)) else None


def run_round(bench: Bench, cell: Cell, rep: int) -> None:
    """One run of one cell, with a fresh server (rounds interleave the servers, so a change in
    the machine's background load hits them alike)."""
    server = SERVER_CLASSES[cell.server](bench)
    cell.forks = server.forks
    try:
        server.launch()
        server.wait_ready()
        result = one_run(bench, server, cell.scenario, rep)
        cell.runs.append(result)
        failed = f", {len(result.errors)} FAILED: {result.errors[0]}" if result.errors else ""
        log(
            f"{cell.scenario:8} {cell.server:10} run {rep + 1}: {result.mib_per_s:7.1f} MiB/s "
            f"in {result.seconds:.2f} s, server process CPU {result.cpu:.2f} s, "
            f"with children {result.group_cpu:.2f} s "
            f"({result.group_cpu_per_mib * 1000:.1f} ms/MiB), "
            f"{result.ok}/{result.clients} ok{failed}"
        )
    except Unavailable as exc:
        cell.unavailable = str(exc)
        log(f"{cell.scenario} {cell.server}: not available: {exc}")
    finally:
        server.stop()


# -- report ------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def report(cells: list[Cell], args: argparse.Namespace, size: int) -> str:
    lines = [
        f"\n{args.clients} concurrent fetches of {args.file} ({size:,} bytes), "
        f"median of {args.repeat} run(s); server on CPU {args.server_cpu}, "
        f"clients on CPU {args.client_cpu}",
        "",
        "| scenario | client | server | MiB/s | server CPU ms/MiB (cgroup) "
        "| server CPU ms/MiB (/proc/PID/stat) | clients ok |",
        "|---|---|---|---|---|---|---|",
    ]
    clients = {"blksize": "curl blksize 1468", "window": "atftp blksize 1468 windowsize 8"}
    for cell in cells:
        if cell.unavailable:
            lines.append(
                f"| {cell.scenario} | {clients[cell.scenario]} | {cell.server} "
                f"| not available: {cell.unavailable} | | | |"
            )
            continue
        cpu = "n/a (forks)" if cell.forks else _fmt(_ms(cell.cpu_per_mib), ".1f")
        oks = ", ".join(f"{r.ok}/{r.clients}" for r in cell.runs)
        lines.append(
            f"| {cell.scenario} | {clients[cell.scenario]} | {cell.server} | "
            f"{_fmt(cell.mib_per_s, '.1f')} | {_fmt(_ms(cell.group_cpu_per_mib), '.1f')} | {cpu} "
            f"| {oks} |"
        )
    lines.append("")
    by = {(c.scenario, c.server): c for c in cells}
    for scenario, peer in (("blksize", "tftpd-hpa"), ("blksize", "atftpd"), ("window", "atftpd")):
        ours, theirs = by.get((scenario, "edgebox")), by.get((scenario, peer))
        if ours is None or theirs is None:
            continue
        lines.append(
            f"edgebox/{peer} ({scenario}): throughput {_ratio(ours.mib_per_s, theirs.mib_per_s)}, "
            f"CPU per MiB {_ratio(ours.group_cpu_per_mib, theirs.group_cpu_per_mib)}"
        )
    return "\n".join(lines)


# -- the edgebox server process ----------------------------------------------------------------


def serve_edgebox(args: argparse.Namespace) -> int:
    """Run edgebox's TFTP listener until SIGTERM (the bench starts this as its own process)."""
    from edgebox.domain.tftp_settings import TftpSettings  # noqa: PLC0415
    from edgebox.net.tftp_listener import TftpEndpoint, TftpListener, server_config  # noqa: PLC0415
    from edgebox.services.tftp_files import TftpFiles  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    files = TftpFiles([Path(args.serve_edgebox)])
    config = server_config(TftpSettings(max_transfers=max(128, args.clients)))
    listener = TftpListener([TftpEndpoint(args.interface, args.netns)], files, config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(listener.run())
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        logging.info("tftp status %s", listener.status())

    asyncio.run(main())
    return 0


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--servers", default=",".join(SERVERS), help="comma list of edgebox,tftpd-hpa,atftpd"
    )
    p.add_argument("--scenarios", default="blksize,window", help="comma list of blksize,window")
    p.add_argument("--clients", type=int, default=100, help="concurrent fetches per run")
    p.add_argument("--file", default="ipxe.efi", help="snponly.efi, undionly.kpxe or ipxe.efi")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell; the median counts")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 clients, 1 run")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--run-timeout", type=float, default=120, help="seconds per run")
    p.add_argument("--deadline", type=float, default=1200, help="stop starting runs after N s")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--serve-edgebox", metavar="ROOT", help=argparse.SUPPRESS)
    p.add_argument("--interface", help=argparse.SUPPRESS)
    p.add_argument("--netns", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.repeat = 10, 1
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.server_list if s not in SERVER_CLASSES]
    unknown += [s for s in args.scenario_list if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown server(s) or scenario(s) {unknown}")
    if args.file not in {Path(loader).name for loader in LOADERS}:
        p.error(f"--file must be one of {[Path(x).name for x in LOADERS]}")
    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpu not in cpus or args.client_cpu not in cpus:
        log(f"warning: CPUs {cpus} available; not pinning")
        args.server_cpu = args.client_cpu = None
    return args


def make_root(workdir: Path) -> Path:
    """The served directory, readable by `nobody` (tftpd-hpa and atftpd drop to it)."""
    workdir.chmod(0o755)
    root = workdir / "root"
    root.mkdir(mode=0o755)
    for loader in LOADERS:
        target = root / Path(loader).name
        shutil.copyfile(loader, target)  # follows ipxe.efi -> /boot/ipxe.efi
        target.chmod(0o644)
    (root / "probe").write_text("probe\n")
    (root / "probe").chmod(0o644)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_edgebox:
        return serve_edgebox(args)
    missing = require_root_and_tools("ip", "taskset", "flock", "curl", "atftp")
    if missing:
        print(f"bench/tftp.py needs root and tools; missing: {', '.join(missing)}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    deadline = started + args.deadline
    cells: list[Cell] = []
    size = Path(next(x for x in LOADERS if Path(x).name == args.file)).stat().st_size
    try:
        with Lab() as lab:
            net = lab.two_hosts(server_addr=SERVER_ADDR, client_addr=CLIENT_ADDR)
            bench = Bench(lab, net, args, lab.tmpdir, make_root(lab.tmpdir))
            cells = [
                Cell(scenario, name)
                for scenario in args.scenario_list
                for name in SCENARIOS[scenario]
                if name in args.server_list
            ]
            for rep in range(args.repeat):
                for cell in cells:
                    if time.monotonic() > deadline:
                        raise KeyboardInterrupt("deadline reached")
                    if not cell.unavailable:
                        run_round(bench, cell, rep)
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): the lab is removed; partial results follow")
    finally:
        signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
    print(report(cells, args, size))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        data = [
            asdict(c)
            | {
                "mib_per_s": c.mib_per_s,
                "cpu_per_mib": c.cpu_per_mib,
                "group_cpu_per_mib": c.group_cpu_per_mib,
            }
            for c in cells
        ]
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
