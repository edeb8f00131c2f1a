#!/usr/bin/env python3
"""Commissioning at scale: N simulated agents commission at once against one edgebox.

Each simulated agent is an HTTP client that makes the calls the real agent
(packaging/ephemeral/agent/edgebox-agent) makes, in the same order:

1. enlist: fetch the boot script (`GET /boot/ipxe?mac=`, which carries a per-boot token),
   `POST /machine/v1/enlist` with an inventory, heartbeat until told to power off;
2. after one `POST /api/v1/commissioning` for all machines (bulk, by filter), boot again:
   a new boot script and token, enlist (purpose commission), `plan`, then for every planned
   result `script`, `env`, `start`, `stdout`, `stderr`, `result` (when the script writes one),
   `done`, and heartbeats `done` until the answer is `poweroff`.

The inventory script's output is a real bundle captured from a QEMU VM
(tests/unit/domain/hardware_bundles/), with each machine's MACs, serial and UUID put in, so the
server parses, stores and re-tags real inventories. Test scripts report success with the result
keys the built-in scripts write; `network-throughput` downloads `--throughput-bytes` from edgebox.

Machines start booting evenly over `--boot-window` seconds (30 by default: a rack powered on
together still PXE-boots over tens of seconds) and each simulated script "runs" for
`--script-seconds` (2 s; real burn-in scripts run for minutes) — so all 1,000 commission at
the same time, as a real fleet would, without a zero-think-time flood no fleet produces.

edgebox runs pinned to CPU 0 and the agents to CPU 1 (on a 2-core machine: one each). Figures:
total time of the commissioning phase, latency p50/p99/max of every agent call (client side,
so it includes the client's own queueing), errors, edgebox CPU seconds per machine (utime +
stime from /proc during the phase), and that every machine ended Ready.

    python bench/commission.py                 # 1,000 agents
    python bench/commission.py --agents 50     # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from edgebox.wire.cpio_newc import decode_newc  # noqa: E402 - after the path set-up

BUNDLE = ROOT / "tests/unit/domain/hardware_bundles/qemu-q35-bios.txt"
HEARTBEAT_SECONDS = 2.0  # the real agent's default is 30 s; shorter only adds load


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    # (when the call ended, seconds into the phase; its latency): the p99 over time shows
    # whether slow calls come with the peak of the load or are spread through the run
    timeline: list[tuple[float, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    cpu_by_window: list[float] = field(default_factory=list)  # edgebox's share of a core

    def all(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


# -- per-machine data --------------------------------------------------------------------------


def macs_of(i: int) -> tuple[str, str]:
    return (f"52:54:01:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}:01",
            f"52:54:01:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}:02")  # fmt: skip


def enlist_inventory(i: int) -> dict[str, Any]:
    boot, second = macs_of(i)
    return {
        "dmi": {"vendor": "QEMU", "product": "Standard PC (Q35 + ICH9, 2009)",
                "serial": f"SIM-{i:06d}", "uuid": _uuid(i)},
        "cpu": {"model": "QEMU Virtual CPU", "sockets": 1, "cores": 2, "threads": 2},
        "memory_mib": 1953,
        "disks": [
            {"name": "vda", "size_bytes": 4 << 30, "model": "", "serial": f"d0-{i}",
             "rotational": False},
            {"name": "vdb", "size_bytes": 1 << 30, "model": "", "serial": f"d1-{i}",
             "rotational": False},
        ],
        "nics": [
            {"name": "eth0", "mac": boot, "driver": "virtio_net", "link": True, "speed_mbps": -1},
            {"name": "eth1", "mac": second, "driver": "e1000", "link": True, "speed_mbps": 1000},
        ],
    }  # fmt: skip


def _uuid(i: int) -> str:
    digest = hashlib.sha256(f"sim-{i}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def bundle_for(template: str, i: int) -> bytes:
    """The captured bundle with this machine's identity in place of the VM's."""
    boot, second = macs_of(i)
    replacements = {
        "/sys/class/net/eth0/address": boot,
        "/sys/class/net/eth1/address": second,
        "/sys/class/dmi/id/product_uuid": _uuid(i),
        "/sys/class/dmi/id/product_serial": f"SIM-{i:06d}",
    }
    out = []
    current = None
    for line in template.splitlines(keepends=True):
        if line.startswith("=== "):
            current = line[4:].strip()
            out.append(line)
            if current in replacements:
                out.append(replacements[current] + "\n")
            continue
        if current not in replacements:
            out.append(line)
    return "".join(out).encode()


def result_file(name: str) -> bytes | None:
    results: dict[str, dict[str, Any]] = {
        "cpu-stress": {"results": {"workers": 2, "checksums_ok": 2}},
        "memory-test": {"results": {"tested_mib": 180}},
        "disk-read": {"results": {"mb_per_s": 812.5}},
        "smart-check": {"status": "skipped", "results": {}},
        "network-throughput": {"results": {"mb_per_s": 940.0}},
        "gpu-presence": {"results": {"gpus_seen": 0}},
    }
    if name not in results:
        return None
    return yaml.safe_dump(results[name]).encode()


# -- one simulated agent -----------------------------------------------------------------------


class Agent:
    def __init__(self, i: int, session: aiohttp.ClientSession, machine_url: str, stats: Stats,
                 template: str, args: argparse.Namespace) -> None:  # fmt: skip
        self.i = i
        self.session = session
        self.url = machine_url
        self.stats = stats
        self.template = template
        self.throughput_bytes = args.throughput_bytes
        self.script_seconds = args.script_seconds
        # Machines do not all boot in the same millisecond: spread their arrival evenly.
        self.arrival = args.boot_window * i / max(1, args.agents)
        self.mac = macs_of(i)[0]
        self.token = ""

    async def _call(self, name: str, method: str, path: str, body: Any = None,
                    raw: bytes | None = None) -> bytes:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        started = time.perf_counter()
        async with self.session.request(method, self.url + path, **kwargs) as resp:
            data = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{name} {resp.status}: {data[:200]!r}")
        ended = time.perf_counter()
        self.stats.latencies[name].append(ended - started)
        self.stats.timeline.append((ended - self.stats.started, ended - started))
        return data

    async def boot(self, purpose: str) -> None:
        script = (await self._call("boot-script", "GET", f"/boot/ipxe?mac={self.mac}")).decode()
        # The token comes as an initrd of its own (docs/security.md), fetched once, as iPXE
        # does right after the script.
        match = re.search(r"^initrd --name token\.cpio \S*(/boot/token/\S+)$", script, re.M)
        if match is None:
            raise RuntimeError(f"boot script without a token: {script[:200]!r}")
        archive = await self._call("boot-token", "GET", match.group(1))
        [entry] = [e for e in decode_newc(gzip.decompress(archive)) if e.name.endswith("/token")]
        self.token = (entry.data or b"").decode().strip()
        if f"edgebox.purpose={purpose}" not in script:
            raise RuntimeError(f"expected purpose {purpose}, got: {script[:300]!r}")
        body = {"boot_mac": self.mac, "purpose": purpose, "inventory": enlist_inventory(self.i)}
        await self._call("enlist", "POST", "/machine/v1/enlist", body)

    async def heartbeat_until_poweroff(self, state: str) -> None:
        while True:
            answer = json.loads(
                await self._call(
                    "heartbeat", "POST", "/machine/v1/heartbeat", {"state": state, "message": ""}
                )
            )
            if answer.get("action") in ("poweroff", "reboot"):
                break
            await asyncio.sleep(HEARTBEAT_SECONDS)
        await self._call("status", "POST", "/machine/v1/status", {"event": "poweroff"})

    async def enlist(self) -> None:
        await self.boot("enlist")
        await self.heartbeat_until_poweroff("idle")

    async def commission(self) -> None:
        await asyncio.sleep(self.arrival)
        await self.boot("commission")
        plan = (await self._call("plan", "POST", "/machine/v1/plan", {})).decode()
        for line in plan.splitlines():
            if not line.strip():
                continue
            result_id, _parallel, _timeout, name = line.split("\t")
            base = f"/machine/v1/results/{result_id}"
            await self._call("script", "POST", f"{base}/script", {})
            await self._call("env", "POST", f"{base}/env", {})
            await self._call("start", "POST", f"{base}/start", {})
            await asyncio.sleep(self.script_seconds)  # the script runs
            if name == "edgebox-inventory":
                stdout = bundle_for(self.template, self.i)
            elif name == "network-throughput":
                path = f"/machine/v1/throughput?bytes={self.throughput_bytes}"
                await self._call("throughput", "POST", path, {})
                stdout = b"downloaded\n"
            else:
                stdout = f"{name}: ok\n".encode()
            await self._call("stdout", "POST", f"{base}/stdout", raw=stdout)
            await self._call("stderr", "POST", f"{base}/stderr", raw=b"")
            result = result_file(name)
            if result is not None:
                await self._call("result", "POST", f"{base}/result", raw=result)
            await self._call("done", "POST", f"{base}/done",
                             {"exit_code": 0, "runtime": 0.5, "timed_out": False})  # fmt: skip
        await self.heartbeat_until_poweroff("done")


async def run_agents(agents: list[Agent], phase: str, stats: Stats) -> float:
    async def one(agent: Agent) -> None:
        try:
            await getattr(agent, phase)()
        except Exception as exc:  # every failure is counted and shown
            stats.errors.append(f"{phase} agent {agent.i}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(one(a) for a in agents))
    return time.perf_counter() - started


# -- edgebox -----------------------------------------------------------------------------------


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_waited(pid: int) -> float:
    """Seconds the process's threads were runnable but waiting for a CPU (schedstat's second
    field): on a shared machine, the time other work took from edgebox's core. A run with
    much of it measures the machine, not edgebox: repeat it."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


async def sample_cpu(pid: int, into: list[float], every: float = 5.0) -> None:
    """Append edgebox's CPU use (fraction of one core) over each `every` seconds."""
    before = cpu_seconds(pid)
    while True:
        await asyncio.sleep(every)
        now = cpu_seconds(pid)
        into.append((now - before) / every)
        before = now


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_edgebox(
    work: Path, extra: dict[str, Any] | None = None
) -> tuple[subprocess.Popen[bytes], str, str, Path, str]:
    api_port, machine_port = free_port(), free_port()
    config = work / "edgebox.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(work / "data"),
        "api": {"host": "127.0.0.1", "port": api_port},
        # Every simulated machine calls from 127.0.0.1: no per-address limit here.
        "machine_http": {"host": "127.0.0.1", "port": machine_port, "rate_limit": 0},
        "site": {"name": "bench"},
        "log": {"level": "warning"},
        "power": {"poll_interval": 0},
        **(extra or {}),
    }))  # fmt: skip
    build = work / "build"
    build.mkdir()
    files = {}
    for name, data in (("vmlinuz", b"kernel"), ("initrd.gz", b"initrd")):
        (build / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (build / "manifest.json").write_text(json.dumps({"files": files, "kernel_version": "6.1"}))
    subprocess.run([sys.executable, "-m", "edgebox", "boot-resources", "--config", str(config),
                    "import", str(build)], check=True, capture_output=True)  # fmt: skip
    log = work / "edgebox.log"
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "edgebox", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=log.open("wb"),
    )  # fmt: skip
    assert proc.stdout is not None
    token = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not token:
        line = proc.stdout.readline().decode()
        if line.strip().startswith("ebx_"):
            token = line.strip()
        if proc.poll() is not None:
            raise SystemExit(f"edgebox exited: {log.read_text()}")
    if not token:
        proc.kill()
        raise SystemExit("edgebox printed no admin token")
    while time.monotonic() < deadline and "edgebox ready" not in log.read_text():
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{machine_port}", log, token


async def api(session: aiohttp.ClientSession, url: str, token: str, method: str, path: str,
              body: Any = None) -> Any:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    async with session.request(method, url + "/api/v1" + path, json=body, headers=headers) as r:
        text = await r.text()
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:300]}")
        return json.loads(text) if text else None


async def count_status(session: aiohttp.ClientSession, url: str, token: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    after = "0"
    while after is not None:
        page = await api(session, url, token, "GET", f"/machines?limit=1000&after={after}")
        for machine in page["items"]:
            counts[machine["status"]] += 1
        after = page["next"]
    return dict(counts)


# -- main --------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, work: Path) -> int:
    proc, api_url, machine_url, log, token = start_edgebox(work)
    stats = Stats()
    template = BUNDLE.read_text()
    try:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            agents = [Agent(i, session, machine_url, stats, template, args)
                      for i in range(args.agents)]  # fmt: skip
            enlisted = await run_agents(agents, "enlist", stats)
            print(f"enlisted {args.agents} machines in {enlisted:.1f}s", flush=True)
            enlist_stats = stats
            stats = Stats()
            for agent in agents:
                agent.stats = stats
            answer = await api(session, api_url, token, "POST", "/commissioning",
                               {"action": "commission", "filter": {"status": ["new"]},
                                "tests": [t for t in args.tests.split(",") if t]})  # fmt: skip
            print(f"commissioning accepted {answer['accepted']}, refused {answer['refused']}")
            spy = None
            if args.profile:
                spy = subprocess.Popen(  # noqa: ASYNC220 - starts in a moment, before the phase
                    ["py-spy", "record", "--pid", str(proc.pid), "--format", "raw",
                     "-o", args.profile, "--rate", "200"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            cpu_before = cpu_seconds(proc.pid)
            waited_before = cpu_waited(proc.pid), cpu_waited(os.getpid())
            client_before = _own_cpu()
            stats.started = time.perf_counter()
            sampler = asyncio.create_task(sample_cpu(proc.pid, stats.cpu_by_window))
            took = await run_agents(agents, "commission", stats)
            sampler.cancel()
            client_cpu = _own_cpu() - client_before
            waited = (cpu_waited(proc.pid) - waited_before[0],
                      cpu_waited(os.getpid()) - waited_before[1])  # fmt: skip
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            deadline = time.monotonic() + 60
            counts = await count_status(session, api_url, token)
            while counts.get("ready", 0) < args.agents and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                counts = await count_status(session, api_url, token)
            cpu = cpu_seconds(proc.pid) - cpu_before
            summary = await api(session, api_url, token, "GET", "/commissioning/summary")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    report(args, took, stats, enlist_stats, cpu, counts, summary)
    print(f"agents' CPU (the load generator, one core): {client_cpu:.1f}s in {took:.1f}s")
    print(f"waited for a CPU (other work on the machine): edgebox {waited[0]:.1f}s, "
          f"agents {waited[1]:.1f}s")  # fmt: skip
    ok = not stats.errors and counts.get("ready", 0) == args.agents
    p99 = percentile(stats.all(), 99) * 1000
    if args.json:
        Path(args.json).write_text(json.dumps({  # noqa: ASYNC240 - once, at the end
            "agents": args.agents, "seconds": took, "p50_ms": percentile(stats.all(), 50) * 1000,
            "p99_ms": p99, "errors": len(stats.errors), "cpu_s_per_machine": cpu / args.agents,
            "ready": counts.get("ready", 0),
        }, indent=2))  # fmt: skip
    if not ok:
        print(f"edgebox log: {log}", file=sys.stderr)
    return 0 if ok else 1


def report(args: argparse.Namespace, took: float, stats: Stats, enlist: Stats, cpu: float,
           counts: dict[str, int], summary: Any) -> None:  # fmt: skip
    calls = stats.all()
    print(f"\ncommissioning {args.agents} machines: {took:.1f}s, {len(calls)} agent calls "
          f"({len(calls) / took:.0f}/s), {len(stats.errors)} errors")  # fmt: skip
    print(f"{'call':<12} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in sorted(stats.latencies.items()):
        print(f"{name:<12} {len(values):>7} {percentile(values, 50) * 1000:>8.1f} "
              f"{percentile(values, 99) * 1000:>8.1f} {max(values) * 1000:>8.1f}")  # fmt: skip
    print(f"{'all':<12} {len(calls):>7} {percentile(calls, 50) * 1000:>8.1f} "
          f"{percentile(calls, 99) * 1000:>8.1f} {max(calls or [0]) * 1000:>8.1f}")  # fmt: skip
    windows: dict[int, list[float]] = defaultdict(list)
    for at, latency in stats.timeline:
        windows[int(at // 5)].append(latency)
    print("p99 ms by 5 s of the phase: " + " ".join(
        f"{percentile(windows[w], 99) * 1000:.0f}" for w in sorted(windows)))  # fmt: skip
    print("edgebox CPU % by 5 s:        " + " ".join(f"{c * 100:.0f}" for c in stats.cpu_by_window))
    enlist_calls = enlist.all()
    print(f"(enlist phase: {len(enlist_calls)} calls, p50 "
          f"{percentile(enlist_calls, 50) * 1000:.1f} ms, p99 "
          f"{percentile(enlist_calls, 99) * 1000:.1f} ms, "
          f"{len(enlist.errors)} errors)")  # fmt: skip
    print(f"edgebox CPU: {cpu:.1f}s in the phase, {cpu / args.agents * 1000:.1f} ms per machine")
    print(f"machines by status: {counts}")
    print(f"fleet summary: {json.dumps(summary)[:300]}")
    for error in stats.errors[:10] + enlist.errors[:10]:
        print(f"error: {error}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--throughput-bytes",
        type=int,
        default=1 << 20,
        help="bytes each network-throughput test downloads (default 1 MiB)",
    )
    parser.add_argument(
        "--boot-window",
        type=float,
        default=30.0,
        help="machines start booting evenly over this many seconds (default 30)",
    )
    parser.add_argument(
        "--script-seconds",
        type=float,
        default=2.0,
        help="how long each simulated script runs (default 2 s)",
    )
    parser.add_argument(
        "--tests",
        default="cpu-stress,memory-test,disk-read,smart-check,network-throughput,gpu-presence",
        help="tests to run after the commissioning scripts (comma-separated)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--profile", help="py-spy edgebox during the phase into this file (raw)")
    args = parser.parse_args()
    if args.agents > 65536:
        parser.error("at most 65,536 agents (MAC addresses are derived from the index)")
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the agents' core; edgebox has core 0
    with tempfile.TemporaryDirectory(prefix="bench-commission-") as tmp:
        return asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
