"""Processes for the lab: finding tools, stopping what we started by PID, and watching output.

Nothing here ever looks a process up by name: a process is stopped only through the PID of a
`Popen` this code created (or a PID that `ip netns pids` reports for a namespace this code
created and owns exclusively).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

# The tools live in sbin directories that an unprivileged PATH often lacks.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def which(tool: str) -> str | None:
    """The absolute path of `tool`, also looking in the sbin directories."""
    found = shutil.which(tool)
    if found:
        return found
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(tool, path=path)


def require_root_and_tools(*tools: str) -> list[str]:
    """What is missing to build a lab here: "root" first when not root, then each missing tool.

    An empty list means the lab can run. `ip` is always checked because every lab needs it.
    """
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in dict.fromkeys(("ip", *tools)):
        if which(tool) is None:
            missing.append(tool)
    return missing


def skip_unless_lab(*tools: str) -> None:
    """For tests: skip (with a printed reason) only when not root; as root, fail on a missing tool.

    CI runs as root with every tool installed, so a lab test must never silently skip there.
    """
    import pytest  # noqa: PLC0415 (the library is also used outside pytest, by bench/)

    missing = require_root_and_tools(*tools)
    if not missing:
        return
    if missing[0] == "root":
        also = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
        reason = f"lab test needs root for network namespaces{also}"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    pytest.fail(f"running as root but these lab tools are missing: {', '.join(missing)}")


def is_running(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> bool:
    return proc.poll() is None


def _signal_pid(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_process(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 2.0
) -> int | None:
    """SIGTERM the process we started, SIGKILL it after `grace` seconds; reap it. Returns rc.

    When the process leads its own session (we start them with `start_new_session=True`), the
    signal goes to its process group, which holds only it and the children it started.
    """
    pid = proc.pid
    try:
        group = os.getpgid(pid) == pid
    except ProcessLookupError:
        group = False
    if proc.poll() is None:
        _signal_pid(pid, signal.SIGTERM, group)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_pid(pid, signal.SIGKILL, group)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    elif group:
        # The leader is gone; children it left in its group are still ours to end.
        _signal_pid(pid, signal.SIGKILL, group)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return proc.returncode


def stop_pids(pids: Iterable[int], grace: float = 1.0) -> list[int]:
    """SIGTERM then SIGKILL a list of PIDs (that are ours); returns those that were signalled."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    signalled: list[int] = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + grace
    while signalled and time.monotonic() < deadline:
        if not any(_alive(p) for p in signalled):
            break
        time.sleep(0.05)
    for pid in signalled:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return signalled


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a zombie child of ours is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class LineWatcher:
    """Reads a text pipe on a daemon thread, keeps its lines, and waits for a pattern.

    Optionally copies every line to `tee` (a path), which helps when a test fails.
    """

    def __init__(self, stream: IO[str], tee: Path | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._tee = tee
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        out = self._tee.open("a", encoding="utf-8") if self._tee else None
        try:
            for line in stream:
                if out is not None:
                    out.write(line)
                    out.flush()
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass  # the pipe was closed under us at teardown
        finally:
            if out is not None:
                out.close()
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> str | None:
        """The first line (from index `start`) matching the regex, or None at timeout / EOF."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    if regex.search(self.lines[index]):
                        return self.lines[index]
                    index += 1
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)
