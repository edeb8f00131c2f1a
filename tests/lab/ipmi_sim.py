"""OpenIPMI's `ipmi_sim` as a LAN BMC on 127.0.0.1, with the machine's state in a file.

Debian ships no example configuration, so this writes its own (see `man ipmi_sim`,
`man ipmi_lan`, `man ipmi_sim_cmd`): a `lan.conf` with one LAN channel on a free UDP port of
127.0.0.1, two users (user 2 with the admin privilege limit, user 3 "viewer" limited to the
user level) and a `chassis_control` program (ipmi_sim_hook.py) that keeps the power and boot
state in `state.json`; and an `.emu` file that makes MC 0x20 the BMC with chassis support.

What the simulator does with chassis commands (measured):
- Chassis Control power up/down → `set power 1|0`; hard reset → `set reset 1`; soft off →
  `set shutdown 1` (the hook powers off at once); power cycle → `set power 0`, then `set power
  1` a second later.
- Boot flags (boot options parameter 5) → `set boot pxe|default|...`. The persistent and valid
  bits are not passed on, and a read of parameter 5 always comes back without them.
- Get Chassis Status → `get power`. Every command runs the hook synchronously (~15 ms).
- ipmitool needs `-C 3` (LAB.md: otherwise each call stalls ≈ 10 s; cipher suite 17 fails).

    with IpmiSim(tmp_path) as sim:
        sim.port, sim.username, sim.password
        sim.state()["power"]                     # 0 or 1
        sim.ipmitool("chassis", "power", "status")

The simulator is a subprocess this code starts and stops by its PID.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.lab.processes import stop_process, which

HOOK = Path(__file__).with_name("ipmi_sim_hook.py")
HOST = "127.0.0.1"

# An ASF presence ping (RMCP class 6, IANA 4542, type 0x80): a BMC that is up answers with a
# pong, which is how readiness is told without a session.
_ASF_PING = bytes([0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x01, 0x00, 0x00])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def asf_ping(port: int, timeout: float = 0.3) -> bool:
    """True when something on 127.0.0.1:`port` answers an RMCP presence ping."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(_ASF_PING, (HOST, port))
            data, _ = sock.recvfrom(512)
        except OSError:
            return False
    return data[:4] == _ASF_PING[:4] and len(data) > 8 and data[8] == 0x40  # the pong


class IpmiSim:
    username = "admin"
    password = "edgebox-test"
    viewer = "viewer"  # user-level privilege only: may query, may not switch power
    viewer_password = "look-only"

    def __init__(self, workdir: Path, start_timeout: float = 10.0) -> None:
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.port = 0
        self.state_file = workdir / "state.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def state(self) -> dict[str, Any]:
        """The machine as the BMC left it: power (0/1), boot, events (every `set`, in order)."""
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            state = {"power": 0, "boot": "none"}
        state.setdefault("events", [])
        return state

    def ipmitool(self, *args: str, password: str | None = None) -> str:
        """Run ipmitool against the simulator (lanplus, cipher suite 3); its stdout."""
        tool = which("ipmitool")
        assert tool is not None, "ipmitool is not installed"
        argv = [
            tool,
            *("-I", "lanplus", "-H", HOST, "-p", str(self.port), "-C", "3"),
            *("-U", self.username, "-P", password if password is not None else self.password),
            *args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    @property
    def log(self) -> str:
        path = self.workdir / "ipmi_sim.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> IpmiSim:
        tool = which("ipmi_sim")
        if tool is None:
            raise RuntimeError("ipmi_sim is not installed (Debian package openipmi)")
        (self.workdir / "ipmi_sim-state").mkdir(parents=True, exist_ok=True)
        emu = self.workdir / "bmc.emu"
        emu.write_text(
            "mc_setbmc 0x20\n"
            # address, device id, SDRs, revision, firmware 9.08, IPMI support bits (0x9f: a
            # chassis device among them), manufacturer, product.
            "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
            "mc_enable 0x20\n"
        )
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_udp_port()
            config = self.workdir / "lan.conf"
            config.write_text(self._lan_conf())
            with (self.workdir / "ipmi_sim.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        tool,
                        *("-c", str(config), "-f", str(emu)),
                        *("-s", str(self.workdir / "ipmi_sim-state"), "-n"),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return self
            stop_process(self.proc)
        raise RuntimeError(f"ipmi_sim did not start; its log:\n{self.log}")

    def _lan_conf(self) -> str:
        hook = shlex.join([sys.executable, "-I", "-S", str(HOOK), str(self.state_file)])
        assert '"' not in hook, "the hook command must fit in a quoted lan.conf string"
        return f"""\
name "edgebox-test"
set_working_mc 0x20
  startlan 1
    addr {HOST} {self.port}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{hook}"
  #    num enabled name password privilege-limit max-sessions auth-types
  user 2 true "{self.username}" "{self.password}" admin 10 md5
  user 3 true "{self.viewer}" "{self.viewer_password}" user 10 md5
"""

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if asf_ping(self.port):
                return True
            time.sleep(0.05)
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
