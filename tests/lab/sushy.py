"""sushy-tools' Redfish emulator with its fake driver, as a subprocess on 127.0.0.1.

LAB.md: `sushy-emulator --fake` needs no libvirt; a power change lands 1-11 s after the request
(poll for it); a `Once` boot override reads back as `Continuous`. Its state lives in a directory
we give it (the default is shared /tmp/sushy-emulator), so parallel runs do not see each other.

    with SushyEmulator(tmp_path) as sushy:
        sushy.url   # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.lab.processes import stop_process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SushyEmulator:
    def __init__(self, workdir: Path, start_timeout: float = 20.0) -> None:
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / "sushy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> SushyEmulator:
        state = self.workdir / "sushy-state"
        state.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "sushy.conf"
        config.write_text(f"SUSHY_EMULATOR_STATE_DIR = {str(state)!r}\n")
        executable = Path(sys.executable).parent / "sushy-emulator"
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            with (self.workdir / "sushy.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        str(executable),
                        "--fake",
                        "--config",
                        str(config),
                        "-i",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return self
            stop_process(self.proc)
        raise RuntimeError(f"sushy-emulator did not start; its log:\n{self.log}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/redfish/v1/", timeout=1) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
