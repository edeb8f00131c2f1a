#!/usr/bin/env python3
"""Image download throughput: 16 curl clients fetching a 512 MiB image at once from edgebox's
machine-facing `GET /images/<sha256>` and from nginx, in one run, on 127.0.0.1.

edgebox runs as a real `edgebox serve` (its own data directory and ports, an image key made
for the run); the file is signed with `edgebox images sign` and imported through the API, so
what is measured is the path a deploying machine takes. nginx runs as our own process from a
generated configuration (one worker, sendfile on, access log off), killed by PID at the end.

For each server: one download is checked byte for byte (SHA-256) outside the timing; then N
clients start together and the clock runs until the last one exits. Aggregate throughput =
N x size / that time. Server CPU = utime + stime from /proc/PID/stat of each server process
(edgebox's one process with its threads; nginx's master and worker) before and after; the
figure is CPU seconds per GiB served. Servers are pinned to CPU 0 and clients to CPU 1 (two
cores: the server must not compete with its clients), and runs go in rounds (each round runs
both servers) so that background load hits both alike; the median of --rounds counts.

    python bench/images.py                     # 16 clients, 512 MiB, 3 rounds
    python bench/images.py --quick             # smoke run: 4 clients, 64 MiB, 1 round

Needs curl and taskset (util-linux); nginx's program is unpacked from its .deb into the run's
directory (tests/lab/debian_unpack.py), since installing nginx starts a system server. Leaves
nothing behind: its temporary directory and both servers are removed, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.lab.debian_unpack import unpacked_program  # noqa: E402

TOOLS = ("curl", "taskset", "apt-get", "dpkg")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20
GIB = 1 << 30


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Run:
    server: str
    seconds: float
    gib_per_s: float
    cpu_s: float
    cpu_s_per_gib: float


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MIB))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def edgebox_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgebox", *args]


def start_edgebox(work: Path, build: Path, pin: list[str]) -> tuple[Server, str]:
    key = work / "bench-key"
    subprocess.run(edgebox_cmd("images", "keygen", str(key)), check=True, capture_output=True)
    subprocess.run(
        edgebox_cmd(
            "images",
            "sign",
            str(build),
            "--key",
            f"{key}.key",
            "--name",
            "bench",
            "--os",
            "bench",
            "--release",
            "1",
            "--compression",
            "none",
            "--disk",
            "disk.raw",
        ),
        check=True,
        capture_output=True,
    )
    api_port, machine_port = free_port(), free_port()
    config = work / "edgebox.yaml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "data_dir": str(work / "edgebox-data"),
                "api": {"host": "127.0.0.1", "port": api_port},
                "machine_http": {"host": "127.0.0.1", "port": machine_port},
                "log": {"level": "warning"},
                "images": {"trusted_keys": [f"{key}.pub"]},
            }
        )
    )
    out = (work / "edgebox.out").open("wb")
    proc = subprocess.Popen(
        [*pin, *edgebox_cmd("serve", "--config", str(config))],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    server = Server("edgebox", f"http://127.0.0.1:{machine_port}", proc)
    token = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and token is None:
        if proc.poll() is not None:
            raise RuntimeError(f"edgebox exited: {(work / 'edgebox.out').read_text()}")
        found = re.search(r"^\s+(ebx_\S+)$", (work / "edgebox.out").read_text(), re.M)
        token = found.group(1) if found else None
        time.sleep(0.1)
    if token is None:
        raise RuntimeError("edgebox did not start in 30 s")
    api = f"http://127.0.0.1:{api_port}/api/v1/images"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"path": str(build)}).encode()
    with urllib.request.urlopen(urllib.request.Request(api, body, headers), timeout=30) as r:
        image = json.load(r)
    while image["state"] == "importing":
        time.sleep(0.2)
        req = urllib.request.Request(f"{api}/{image['id']}", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            image = json.load(r)
    if image["state"] != "ready":
        raise RuntimeError(f"import failed: {image['error']}")
    return server, image["files"][0]["sha256"]


def start_nginx(work: Path, build: Path, pin: list[str]) -> Server:
    # Unpacked, not installed: the nginx packages start a system-wide server on install.
    nginx = str(unpacked_program("nginx", "usr/sbin/nginx", work))
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {build};
    }}
}}
""")
    proc = subprocess.Popen(
        [*pin, nginx, "-p", str(prefix), "-c", str(conf)], stderr=(prefix / "stderr").open("wb")
    )
    server = Server("nginx", f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(prefix / 'stderr').read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.05)
    raise RuntimeError("nginx did not listen in 10 s")


def check_once(url: str, sha: str) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as resp:
        while chunk := resp.read(MIB):
            digest.update(chunk)
    if digest.hexdigest() != sha:
        raise RuntimeError(f"{url} served other bytes (sha256 {digest.hexdigest()})")


def measure(server: Server, url: str, clients: int, size: int, pin: list[str]) -> Run:
    argv = [*pin, "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url]
    before = cpu_seconds(server.pids())
    started = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(clients)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    seconds = time.monotonic() - started
    cpu = cpu_seconds(server.pids()) - before
    bad = [o for o, p in zip(outputs, procs, strict=True) if p.returncode or int(o) != size]
    if bad:
        raise RuntimeError(f"{server.name}: {len(bad)} of {clients} downloads incomplete")
    gib = clients * size / GIB
    return Run(server.name, seconds, gib / seconds, cpu, cpu / gib)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 clients, 64 MiB, 1 round")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs 0 and 1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.size_mib, args.rounds = 4, 64, 1
    for tool in TOOLS:
        if shutil.which(tool) is None:
            print(f"images bench: {tool} is missing", file=sys.stderr)
            return 1
    two_cores = (os.cpu_count() or 1) >= 2 and not args.no_pin
    server_pin = ["taskset", "-c", "0"] if two_cores else []
    client_pin = ["taskset", "-c", "1"] if two_cores else []
    size = args.size_mib * MIB
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-images.") as tmp:
        work = Path(tmp)
        build = work / "build"
        build.mkdir()
        os.chmod(work, 0o755)
        log(f"writing a {args.size_mib} MiB image")
        sha = make_file(build / "disk.raw", size)
        servers: list[Server] = []
        try:
            edgebox, served_sha = start_edgebox(work, build, server_pin)
            servers.append(edgebox)
            assert served_sha == sha
            servers.append(start_nginx(work, build, server_pin))
            urls = {"edgebox": f"{edgebox.url}/images/{sha}", "nginx": f"{servers[1].url}/disk.raw"}
            for server in servers:
                check_once(urls[server.name], sha)
            for round_no in range(1, args.rounds + 1):
                for server in servers:
                    run = measure(server, urls[server.name], args.clients, size, client_pin)
                    runs.append(run)
                    log(
                        f"round {round_no} {server.name}: {run.gib_per_s:.2f} GiB/s, "
                        f"{run.cpu_s_per_gib:.3f} CPU s/GiB"
                    )
        finally:
            for server in servers:
                server.stop()
    summary = summarise(runs)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "runs": [asdict(r) for r in runs],
                    "clients": args.clients,
                    "size_mib": args.size_mib,
                },
                indent=2,
            )
        )
    return 0


def summarise(runs: list[Run]) -> dict[str, float]:
    def median(server: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs if r.server == server)

    eb_tp, ng_tp = median("edgebox", "gib_per_s"), median("nginx", "gib_per_s")
    eb_cpu, ng_cpu = median("edgebox", "cpu_s_per_gib"), median("nginx", "cpu_s_per_gib")
    return {
        "edgebox_gib_per_s": round(eb_tp, 3),
        "nginx_gib_per_s": round(ng_tp, 3),
        "throughput_ratio": round(eb_tp / ng_tp, 3),
        "edgebox_cpu_s_per_gib": round(eb_cpu, 4),
        "nginx_cpu_s_per_gib": round(ng_cpu, 4),
        "cpu_ratio": round(eb_cpu / ng_cpu, 3) if ng_cpu else float("inf"),
        "target_throughput_ratio_min": 0.9,
        "target_cpu_ratio_max": 1.5,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
