#!/usr/bin/env python3
"""Footprint of `edgebox serve` with an empty database.

For each of N starts (fresh data directory each time): the time from spawning the process to
the first 200 from /api/v1/health, and the resident set size after it has idled for a while.
Prints the medians against the targets (<= 1 s, <= 60 MiB) and exits 1 if a target is missed.

    python bench/footprint.py              # 5 starts, RSS after 10 s idle
    python bench/footprint.py --runs 1 --idle 1   # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_START_S = 1.0
TARGET_RSS_MIB = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_start(python: str, idle: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "edgebox.yaml"
        config.write_text(
            f"data_dir: {tmp}/data\napi: {{port: {port}}}\n"
            f"machine_http: {{host: 127.0.0.1, port: {free_port()}}}\n"
        )
        url = f"http://127.0.0.1:{port}/api/v1/health"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [python, "-m", "edgebox", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"edgebox exited with {proc.returncode}")
                if time.perf_counter() - started > 30:
                    raise RuntimeError("no 200 from /health within 30 s")
                time.sleep(0.005)
            first_200 = time.perf_counter() - started
            time.sleep(idle)
            rss = rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    return first_200, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before RSS")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    starts, rsses = [], []
    for i in range(args.runs):
        first_200, rss = one_start(args.python, args.idle)
        starts.append(first_200)
        rsses.append(rss)
        print(f"run {i + 1}: first 200 after {first_200:.3f} s, RSS {rss:.1f} MiB", flush=True)
    start_med, rss_med = statistics.median(starts), statistics.median(rsses)
    ok = start_med <= TARGET_START_S and rss_med <= TARGET_RSS_MIB
    print(
        f"median of {args.runs}: time to first 200 {start_med:.3f} s (target <= {TARGET_START_S}), "
        f"idle RSS after {args.idle:g} s {rss_med:.1f} MiB (target <= {TARGET_RSS_MIB})"
    )
    print(json.dumps({"first_200_s": starts, "rss_mib": rsses, "cpu_count": os.cpu_count()}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
