"""Running `edgebox serve` as a real process for tests: start, wait until ready, stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    config: Path
    api_url: str
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def admin_token(self) -> str | None:
        match = re.search(r"^\s+(ebx_\S+)$", self.stdout, re.M)
        return match.group(1) if match else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def write_config(workdir: Path, **overrides: object) -> Path:
    config: dict[str, object] = {
        "data_dir": str(workdir / "data"),
        "api": {"host": "127.0.0.1", "port": free_port()},
        "machine_http": {"host": "127.0.0.1", "port": free_port()},
        "site": {"name": "test-site"},
    }
    config.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "edgebox.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(config: Path, wait: bool = True, name: str = "serve") -> Daemon:
    settings = yaml.safe_load(config.read_text())
    out = config.parent / f"{name}.out"
    err = config.parent / f"{name}.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgebox", "serve", "--config", str(config)],
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    api = settings["api"]
    url = f"http://{api.get('host', '127.0.0.1')}:{api.get('port', 5240)}"
    daemon = Daemon(proc, config, url, out, err)
    if wait:
        wait_ready(daemon)
    return daemon


def wait_ready(daemon: Daemon, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "edgebox ready" in daemon.stderr:
            return
        if daemon.proc.poll() is not None:
            raise AssertionError(f"edgebox exited {daemon.proc.returncode}: {daemon.stderr}")
        time.sleep(0.02)
    daemon.stop(signal.SIGKILL)
    raise AssertionError(f"edgebox not ready in {timeout}s: {daemon.stderr}")


@contextlib.contextmanager
def running(config: Path, name: str = "serve") -> Iterator[Daemon]:
    daemon = start(config, name=name)
    try:
        yield daemon
    finally:
        if daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)
