#!/usr/bin/env python3
"""Deploying at scale: N simulated machines deploy one image at once from one edgebox.

The machines are first made Ready the way bench/commission.py does it (simulated agents
enlist and commission, scripts taking no time). Then one `POST /api/v1/deploy` for all of
them, and each simulated machine does what the real agent and the deployed OS do
(docs/deploy-contract.md): boot script, enlist (purpose deploy), `deploy/plan`, download the
image from edgebox's image endpoint (hashing it as the agent does, the bytes going nowhere —
"streaming the image to /dev/null"), progress reports, log, `deploy/done`, then as the
rebooted OS the four NoCloud-net documents, which mark it Deployed.

The image is synthetic: `--image-mib` MiB of random bytes (incompressible), uncompressed,
signed with a key made for the run. edgebox is pinned to CPU 0, the machines to CPU 1.
Figures: total time of the deploy phase, aggregate image throughput, latency of the agent
calls, edgebox CPU in total and per machine, and that every machine ended Deployed.

    python bench/deploy.py                   # 300 machines, 64 MiB image
    python bench/deploy.py --machines 20 --image-mib 8   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from commission import (  # noqa: E402 - after the path set-up
    BUNDLE,
    Agent,
    Stats,
    api,
    count_status,
    cpu_seconds,
    percentile,
    run_agents,
    start_edgebox,
)

PROGRESS_EVERY = 16 << 20  # bytes between progress reports, as the agent does every few s


def make_image(work: Path, mib: int) -> tuple[Path, Path]:
    """A signed build directory with a random raw image, and the public key that trusts it."""
    build = work / "image"
    build.mkdir()
    with (build / "disk.raw").open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    edgebox = [sys.executable, "-m", "edgebox"]
    subprocess.run([*edgebox, "images", "keygen", str(work / "bench")], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [*edgebox, "images", "sign", str(build), "--key", str(work / "bench.key"),
         "--name", "bench-image", "--os", "none", "--release", "1", "--compression", "none",
         "--disk", "disk.raw"],
        check=True, capture_output=True,
    )  # fmt: skip
    return build, work / "bench.pub"


class DeployingMachine(Agent):
    async def deploy(self) -> None:
        await self.boot("deploy")
        plan_text = await self._call("deploy-plan", "POST", "/machine/v1/deploy/plan", {})
        plan = dict(line.split("=", 1) for line in plan_text.decode().splitlines() if "=" in line)
        digest = hashlib.sha256()
        size = int(plan["size"])
        done = 0
        next_report = PROGRESS_EVERY
        started = time.perf_counter()
        async with self.session.get(plan["image_url"]) as resp:
            if resp.status != 200:
                raise RuntimeError(f"image download: {resp.status}")
            async for chunk in resp.content.iter_chunked(1 << 20):
                digest.update(chunk)
                done += len(chunk)
                if done >= next_report:
                    next_report += PROGRESS_EVERY
                    await self._call("progress", "POST", "/machine/v1/deploy/progress",
                                     {"step": "write", "done": done, "total": size})  # fmt: skip
        self.stats.latencies["image-download"].append(time.perf_counter() - started)
        if digest.hexdigest() != plan["sha256"] or done != size:
            raise RuntimeError(f"image hash or size mismatch after {done} bytes")
        await self._call("log", "POST", "/machine/v1/deploy/log", raw=b"wrote the image\n")
        # vda's serial in the captured bundle every simulated machine was commissioned with:
        # edgebox checks the disk written against the inventory.
        done_body = {"ok": True, "disk": "vda", "sha256": digest.hexdigest(),
                     "serial": "EBDISK0001"}  # fmt: skip
        answer = await self._call("deploy-done", "POST", "/machine/v1/deploy/done", done_body)
        if json.loads(answer).get("action") != "reboot":
            raise RuntimeError(f"deploy/done answered {answer!r}")
        self.token = ""  # the deployed OS has no agent token: the seed URL is the identity
        seed = plan["seed_url"]
        path = seed[seed.index("/cloud-init/") :]
        for document in ("meta-data", "network-config", "vendor-data", "user-data"):
            await self._call("cloud-init", "GET", path + document)


async def bench(args: argparse.Namespace, work: Path) -> int:
    build, public_key = make_image(work, args.image_mib)
    proc, api_url, machine_url, log, token = start_edgebox(
        work, {"images": {"trusted_keys": [str(public_key)]}}
    )
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=600)
        ) as session:
            image = await api(session, api_url, token, "POST", "/images", {"path": str(build)})
            while image["state"] == "importing":
                await asyncio.sleep(0.2)
                image = await api(session, api_url, token, "GET", f"/images/{image['id']}")
            if image["state"] != "ready":
                raise SystemExit(f"the image did not import: {image}")
            ready_args = argparse.Namespace(throughput_bytes=0, script_seconds=0.0,
                                            boot_window=0.0, agents=args.machines)  # fmt: skip
            setup = Stats()
            template = BUNDLE.read_text()
            machines = [DeployingMachine(i, session, machine_url, setup, template, ready_args)
                        for i in range(args.machines)]  # fmt: skip
            await run_agents(machines, "enlist", setup)
            commission = {"action": "commission", "filter": {"status": ["new"]}, "tests": []}
            await api(session, api_url, token, "POST", "/commissioning", commission)
            await run_agents(machines, "commission", setup)
            counts = await count_status(session, api_url, token)
            if counts.get("ready", 0) != args.machines or setup.errors:
                raise SystemExit(
                    f"machines not Ready before deploying: {counts} {setup.errors[:3]}"
                )
            print(f"{args.machines} machines Ready; deploying {args.image_mib} MiB to each")
            stats = Stats()
            for machine in machines:
                machine.stats = stats
            cpu_before = cpu_seconds(proc.pid)
            started = time.perf_counter()
            deploy = {"image": "bench-image", "filter": {"status": ["ready"]}}
            answer = await api(session, api_url, token, "POST", "/deploy", deploy)
            await run_agents(machines, "deploy", stats)
            deadline = time.monotonic() + 60
            counts = await count_status(session, api_url, token)
            while counts.get("deployed", 0) < args.machines and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                counts = await count_status(session, api_url, token)
            took = time.perf_counter() - started
            cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    report(args, answer, took, stats, cpu, counts)
    ok = not stats.errors and counts.get("deployed", 0) == args.machines
    if not ok:
        print(f"edgebox log: {log}", file=sys.stderr)
    return 0 if ok else 1


def report(args: argparse.Namespace, answer: Any, took: float, stats: Stats, cpu: float,
           counts: dict[str, int]) -> None:  # fmt: skip
    moved = args.machines * args.image_mib / 1024
    calls = [x for name, values in stats.latencies.items() if name != "image-download"
             for x in values]  # fmt: skip
    print(f"\ndeploy of {args.machines} machines: {took:.1f}s, {moved:.1f} GiB of image "
          f"({moved / took:.2f} GiB/s), {len(stats.errors)} errors")  # fmt: skip
    print(f"{'call':<15} {'count':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, values in sorted(stats.latencies.items()):
        print(f"{name:<15} {len(values):>6} {percentile(values, 50) * 1000:>9.1f} "
              f"{percentile(values, 99) * 1000:>9.1f} {max(values) * 1000:>9.1f}")  # fmt: skip
    print(f"{'agent calls':<15} {len(calls):>6} {percentile(calls, 50) * 1000:>9.1f} "
          f"{percentile(calls, 99) * 1000:>9.1f}")  # fmt: skip
    print(f"edgebox CPU: {cpu:.1f}s in the phase, {cpu / args.machines * 1000:.1f} ms per "
          f"machine, {cpu / moved:.2f} s per GiB served")  # fmt: skip
    print(f"machines by status: {counts}")
    accepted = answer.get("accepted", answer) if isinstance(answer, dict) else answer
    print(f"deploy request: accepted {accepted}")
    for error in stats.errors[:10]:
        print(f"error: {error}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=300)
    parser.add_argument("--image-mib", type=int, default=64)
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        return asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
