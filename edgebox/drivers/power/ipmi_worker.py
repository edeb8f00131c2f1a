"""The IPMI worker: a process per BMC that runs pyghmi, so that a call stuck in it costs a kill.

Run as `python -m edgebox.drivers.power.ipmi_worker` by `edgebox.drivers.power.ipmi`, which
speaks `ipmi_protocol` with it over stdin/stdout and kills it when a call overruns its deadline.

Why a process: pyghmi blocks, and a thread stuck in it cannot be stopped. It was seen to hang
forever on a second session to the same BMC in one process, to break its session cache after
`logout()`, and to misbehave after a failed login (a second `Command()` in the same process
then failed or hung). So each worker holds one `Command` (one session) for one BMC.

The worker logs in at the first request and reuses the session for the next ones. It ends
itself, logging out first, when stdin closes (the parent's `close()`), after `idle_exit`
seconds without a request (a BMC drops an idle session after 30-60 s, and an idle worker
costs ~30 MiB), and right after replying with a failure: pyghmi's state after an error is
not to be trusted, and the next call gets a fresh process.

pyghmi is imported only here, inside the worker (`PyghmiBmc`): the daemon never loads it.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from edgebox.drivers.power.ipmi_protocol import (
    Failure,
    ProtocolError,
    Reply,
    Request,
    SessionSettings,
    encode_reply,
    failure_of,
    parse_request,
)

# pyghmi's logout sends one packet without retry; a BMC that vanished must not keep a
# worker alive that is on its way out.
LOGOUT_SECONDS = 2


class Bmc(Protocol):
    """What the worker needs from one BMC session (pyghmi's `Command`, or a fake in tests)."""

    def power_state(self) -> str: ...

    def set_power(self, state: str) -> None: ...

    def set_boot(self, device: str, *, persistent: bool) -> None: ...

    def logout(self) -> None: ...


def run_request(bmc: Bmc, request: Request) -> str:
    """Carry out one request; the result word for the reply."""
    op = request.op
    if op == "query":
        return bmc.power_state()
    if op == "soft_off":
        # An ACPI shutdown request to a machine that is off is refused by some BMCs (0xD5).
        if bmc.power_state() != "off":
            bmc.set_power("shutdown")
    elif op == "cycle":
        bmc.set_power("boot")  # pyghmi: reset when on, on when off
    elif op == "boot":
        bmc.set_boot(request.device, persistent=request.persistent)
    else:
        bmc.set_power(op)  # "on" / "off"
    return ""


class LineReader:
    """Lines from a file descriptor, waiting at most `timeout` seconds for the next one.

    It reads raw bytes itself: a buffered text stream can hold a second line already read
    from the pipe while `select` says there is nothing to read.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False

    def read_line(self, timeout: float) -> str | None:
        """The next line without its newline; None at the end of input or after `timeout`."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer and not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 65536)
                self._buffer += chunk
                self._eof = not chunk
        if b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            return line.decode("utf-8", "replace")
        return None


def serve(
    settings: SessionSettings,
    lines: LineReader,
    write: Callable[[str], None],
    connect: Callable[[SessionSettings], Bmc],
) -> int:
    """Answer requests until the input ends, the worker idles out or a call fails."""
    bmc: Bmc | None = None
    while True:
        line = lines.read_line(settings.idle_exit)
        if line is None:  # end of input, or idle too long
            break
        try:
            request = parse_request(line)
        except ProtocolError as exc:
            write(encode_reply(Reply(-1, False, failure=Failure.FAILED, detail=str(exc))))
            return 2
        try:
            if bmc is None:
                bmc = connect(settings)  # logs in
            result = run_request(bmc, request)
        except Exception as exc:
            failure, detail = failure_of(exc)
            write(encode_reply(Reply(request.id, False, failure=failure, detail=detail)))
            if bmc is not None:
                bmc.logout()
            return 1
        write(encode_reply(Reply(request.id, True, result=result)))
    if bmc is not None:
        bmc.logout()
    return 0


class PyghmiBmc:
    """One pyghmi `Command`: its constructor logs in, and blocks until it has."""

    def __init__(self, settings: SessionSettings) -> None:
        from pyghmi.ipmi import command  # type: ignore[import-untyped]  # noqa: PLC0415

        _pin_cipher_suite(settings.cipher_suite)
        self._command = command.Command(
            bmc=settings.host,
            userid=settings.username,
            password=settings.password,
            port=settings.port,
            kg=bytes.fromhex(settings.k_g) if settings.k_g else None,
            privlevel=settings.privilege,
        )

    def power_state(self) -> str:
        return str(self._command.get_power()["powerstate"])

    def set_power(self, state: str) -> None:
        self._command.set_power(state, wait=False)

    def set_boot(self, device: str, *, persistent: bool) -> None:
        answer = self._command.set_bootdev(device, persist=persistent)
        if isinstance(answer, dict) and "error" in answer:  # pyghmi returns some errors
            raise RuntimeError(answer["error"])

    def logout(self) -> None:
        signal.alarm(LOGOUT_SECONDS)  # the default action ends the process
        try:
            self._command.ipmi_session.logout()
        except Exception:  # noqa: S110 (on the way out; the BMC times the session out anyway)
            pass
        finally:
            signal.alarm(0)


def _pin_cipher_suite(suite: int) -> None:
    """Make pyghmi propose only `suite`.

    pyghmi has no setting for it: it proposes suite 17 (SHA-256) and, when the BMC refuses,
    suite 3 (SHA-1), choosing by its session attribute `attemptedhash` (256 first, then 1).
    Setting that attribute when a login starts pins suite 3 (1), or suite 17 without the
    fallback (any other value: SHA-256 is proposed and a refusal is reported, not retried).
    Patched in the worker process only.
    """
    from pyghmi.ipmi.private import session  # type: ignore[import-untyped]  # noqa: PLC0415

    start_login = session.Session._initsession

    def _initsession(self: Any) -> None:
        start_login(self)
        self.attemptedhash = 1 if suite == 3 else suite

    session.Session._initsession = _initsession


def main(connect: Callable[[SessionSettings], Bmc] = PyghmiBmc) -> int:
    """Read the settings line, then serve. `connect` is replaceable for tests."""
    # The protocol owns the real stdout; pyghmi prints now and then, so fd 1 becomes stderr.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def write(line: str) -> None:
        protocol.write(line + "\n")
        protocol.flush()

    lines = LineReader(sys.stdin.fileno())
    first = lines.read_line(60.0)
    if first is None:
        return 2
    try:
        settings = SessionSettings.parse(first)
    except ProtocolError as exc:
        write(encode_reply(Reply(-1, False, failure=Failure.FAILED, detail=str(exc))))
        return 2
    return serve(settings, lines, write, connect)


if __name__ == "__main__":
    sys.exit(main())
