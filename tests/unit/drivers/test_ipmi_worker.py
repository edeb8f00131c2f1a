"""The IPMI worker's loop with a fake BMC session: requests over a real pipe, replies as lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from edgebox.drivers.power.ipmi_protocol import (
    Failure,
    Request,
    SessionSettings,
    encode_request,
    parse_reply,
)
from edgebox.drivers.power.ipmi_worker import LineReader, PyghmiBmc, run_request, serve

SETTINGS = SessionSettings("bmc", 623, "admin", "pw", 4, 3, "", idle_exit=5.0)


class FakeBmc:
    """Records what it is told; `fail` makes the named method raise like pyghmi does."""

    def __init__(self, power: str = "off", fail: dict[str, Exception] | None = None) -> None:
        self.power = power
        self.fail = fail or {}
        self.calls: list[str] = []
        self.logged_out = False

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise self.fail[name]

    def power_state(self) -> str:
        self.calls.append("get")
        self._maybe_fail("power_state")
        return self.power

    def set_power(self, state: str) -> None:
        self.calls.append(f"set {state}")
        self._maybe_fail("set_power")

    def set_boot(self, device: str, *, persistent: bool) -> None:
        self.calls.append(f"boot {device} persistent={persistent}")

    def logout(self) -> None:
        self.logged_out = True


def run(requests: list[str], bmc: FakeBmc, *, close: bool = True, idle: float = 5.0) -> Any:
    """serve() over a pipe holding `requests`; returns (exit code, replies, connects)."""
    read_end, write_end = os.pipe()
    os.write(write_end, "".join(line + "\n" for line in requests).encode())
    if close:
        os.close(write_end)
    replies: list[str] = []
    connects: list[SessionSettings] = []

    def connect(settings: SessionSettings) -> FakeBmc:
        connects.append(settings)
        return bmc

    settings = SessionSettings("bmc", 623, "admin", "pw", 4, 3, "", idle_exit=idle)
    try:
        code = serve(settings, LineReader(read_end), replies.append, connect)
    finally:
        os.close(read_end)
        if not close:
            os.close(write_end)
    return code, [parse_reply(line) for line in replies], connects


def test_one_session_serves_every_request_then_logs_out_at_end_of_input() -> None:
    bmc = FakeBmc(power="off")
    code, replies, connects = run(
        [
            encode_request(Request(1, "query")),
            encode_request(Request(2, "on")),
            encode_request(Request(3, "boot", "network", persistent=False)),
            encode_request(Request(4, "cycle")),
        ],
        bmc,
    )
    assert code == 0
    assert len(connects) == 1  # logged in once, reused
    assert [(r.id, r.ok, r.result) for r in replies] == [
        (1, True, "off"),
        (2, True, ""),
        (3, True, ""),
        (4, True, ""),
    ]
    assert bmc.calls == ["get", "set on", "boot network persistent=False", "set boot"]
    assert bmc.logged_out


def test_a_failure_is_replied_and_ends_the_worker() -> None:
    bmc = FakeBmc(
        fail={"set_power": Exception("Insufficient privilege level or firmware firewall")}
    )
    code, replies, _ = run(
        [encode_request(Request(1, "on")), encode_request(Request(2, "query"))], bmc
    )
    assert code == 1
    assert len(replies) == 1  # the second request is never read: a fresh worker gets it
    assert replies[0].failure is Failure.PRIVILEGE
    assert "Insufficient privilege" in replies[0].detail
    assert bmc.logged_out


def test_a_failed_login_is_replied_without_logout() -> None:
    replies: list[str] = []
    read_end, write_end = os.pipe()
    os.write(write_end, (encode_request(Request(1, "query")) + "\n").encode())
    os.close(write_end)

    def refuse(settings: SessionSettings) -> FakeBmc:
        raise Exception("Incorrect password provided")

    try:
        code = serve(SETTINGS, LineReader(read_end), replies.append, refuse)
    finally:
        os.close(read_end)
    assert code == 1
    reply = parse_reply(replies[0])
    assert (reply.id, reply.ok, reply.failure) == (1, False, Failure.CREDENTIALS)


def test_an_idle_worker_logs_out_and_ends() -> None:
    bmc = FakeBmc()
    started = time.monotonic()
    code, replies, _ = run([encode_request(Request(1, "query"))], bmc, close=False, idle=0.2)
    assert code == 0
    assert len(replies) == 1
    assert 0.2 <= time.monotonic() - started < 2.0
    assert bmc.logged_out


def test_a_garbage_request_is_answered_and_ends_the_worker() -> None:
    code, replies, connects = run(["power on please"], FakeBmc())
    assert code == 2
    assert replies[0].ok is False
    assert "not JSON" in replies[0].detail
    assert connects == []


@pytest.mark.parametrize(("power", "calls"), [("on", ["get", "set shutdown"]), ("off", ["get"])])
def test_soft_off_is_only_sent_to_a_machine_that_is_on(power: str, calls: list[str]) -> None:
    bmc = FakeBmc(power=power)
    assert run_request(bmc, Request(1, "soft_off")) == ""
    assert bmc.calls == calls


def test_line_reader_keeps_the_second_line_of_one_read() -> None:
    # Both lines arrive in one read(): the second must not wait for more input.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b'{"a": 1}\n{"b": 2}\n{"c"')
        reader = LineReader(read_end)
        assert reader.read_line(1.0) == '{"a": 1}'
        started = time.monotonic()
        assert reader.read_line(5.0) == '{"b": 2}'
        assert time.monotonic() - started < 0.5
        assert reader.read_line(0.1) is None  # a partial line: times out
        os.write(write_end, b": 3}\n")
        assert reader.read_line(1.0) == '{"c": 3}'
        os.close(write_end)
        write_end = -1
        assert reader.read_line(1.0) is None  # end of input
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


class RecordingCommand:
    """Stands in for pyghmi's Command to check the words the adapter passes on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def get_power(self) -> dict[str, str]:
        return {"powerstate": "on"}

    def set_power(self, state: str, wait: bool = False) -> dict[str, str]:
        self.calls.append(("set_power", (state, wait)))
        return {"pendingpowerstate": state}

    def set_bootdev(self, device: str, persist: bool = False) -> dict[str, str]:
        self.calls.append(("set_bootdev", (device, persist)))
        if device == "floppy":
            return {"error": "Unknown bootdevice floppy requested"}
        return {"bootdev": device}


def test_the_pyghmi_adapter_passes_once_as_not_persistent_and_does_not_wait() -> None:
    adapter = object.__new__(PyghmiBmc)
    command = RecordingCommand()
    adapter._command = command  # type: ignore[attr-defined]
    adapter.set_boot("network", persistent=False)
    adapter.set_boot("hd", persistent=True)
    adapter.set_power("on")
    assert adapter.power_state() == "on"
    assert command.calls == [
        ("set_bootdev", ("network", False)),
        ("set_bootdev", ("hd", True)),
        ("set_power", ("on", False)),
    ]
    with pytest.raises(RuntimeError, match="Unknown bootdevice"):
        adapter.set_boot("floppy", persistent=False)


def test_the_worker_main_speaks_the_protocol_on_its_own_stdout() -> None:
    # pyghmi prints to stdout at times; main() moves fd 1 to stderr and keeps the real stdout
    # for replies. Checked in a subprocess (it rewires file descriptors).
    settings = SessionSettings("127.0.0.1", 9, "u", "p", 4, 3, "", idle_exit=5.0)
    done = subprocess.run(
        [sys.executable, "-m", "edgebox.drivers.power.ipmi_worker"],
        input=settings.encode() + "\n" + '{"id": 1, "op": "warp"}\n',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    reply = json.loads(done.stdout)
    assert reply["ok"] is False
    assert "unknown op 'warp'" in reply["detail"]
