"""A stand-in for the IPMI worker process: the real protocol loop (`ipmi_worker.main`) over a
scripted BMC, so the driver's process handling is tested without a BMC or pyghmi.

The BMC's host name picks the behaviour; `JOURNAL` (an environment variable) names a file where
each session appends what it did, with times, for the tests to read:

    ok        answers at once (power "on")
    slow      each call takes 0.2 s
    hang      every call hangs forever
    hang-login   the login hangs forever
    hang-first   the first worker's first call hangs; later workers answer (a flag file)
    refuse    the login fails like a wrong password
    crash     the process dies (exit code 3) during a call
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from edgebox.drivers.power.ipmi_protocol import SessionSettings
from edgebox.drivers.power.ipmi_worker import main

JOURNAL = Path(os.environ["FAKE_IPMI_JOURNAL"])


def note(text: str) -> None:
    with JOURNAL.open("a") as journal:
        journal.write(f"{os.getpid()} {time.monotonic():.6f} {text}\n")


class ScriptedBmc:
    def __init__(self, settings: SessionSettings) -> None:
        self.host = settings.host
        note("login")
        note(f"host {self.host}")  # what the driver gave the worker to talk to
        if self.host == "hang-login":
            time.sleep(3600)
        if self.host == "refuse":
            raise Exception("Incorrect password provided")

    def _work(self, what: str) -> None:
        note(f"start {what}")
        if self.host == "hang":
            time.sleep(3600)
        if self.host == "hang-first":
            flag = JOURNAL.with_suffix(".hung")
            if not flag.exists():
                flag.touch()
                time.sleep(3600)
        if self.host == "crash":
            os._exit(3)
        if self.host == "slow":
            time.sleep(0.2)
        note(f"end {what}")

    def power_state(self) -> str:
        self._work("query")
        return "on"

    def set_power(self, state: str) -> None:
        self._work(f"power {state}")

    def set_boot(self, device: str, *, persistent: bool) -> None:
        self._work(f"boot {device} {persistent}")

    def logout(self) -> None:
        note("logout")


if __name__ == "__main__":
    sys.exit(main(ScriptedBmc))
