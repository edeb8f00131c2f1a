"""A tiny asyncio client for QEMU's machine protocol (QMP) on a unix socket.

How QMP works: the server speaks first with a greeting (`{"QMP": {"version": ...}}`), the
client leaves negotiation mode with `{"execute": "qmp_capabilities"}`, and from then on each
command (`{"execute": NAME, "arguments": {...}, "id": N}`) gets exactly one reply,
`{"return": ...}` or `{"error": {"class": ..., "desc": ...}}`, carrying the same id. Between
replies the server may send asynchronous events (`{"event": "RESET", "data": ...}`) at any
time; the client keeps them, in order, for `wait_event`. Every message is one JSON object on
one line.

`parse_message` and `encode_command` are the pure core; `QmpClient` is the asyncio adapter.
QEMU serves one client at a time on a socket: a second connection waits in the listen
backlog until the first closes, so callers keep their sessions short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

# A reply to query-qmp-schema can be large; one line must fit in the stream buffer.
_LINE_LIMIT = 4 << 20
# Events nobody waited for; a session is short, but a chatty guest must not grow it unbounded.
_EVENTS_KEPT = 256


class QmpError(Exception):
    """Talking to QEMU failed."""


class QmpConnectionError(QmpError):
    """The socket could not be opened, closed early or did not answer in time."""


class QmpProtocolError(QmpError):
    """The peer sent something that is not QMP: probably not a QEMU monitor socket."""


class QmpCommandError(QmpError):
    """QEMU refused a command; `error_class` and `desc` are QEMU's own words."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"{command}: {desc} ({error_class})")


@dataclass(frozen=True, slots=True)
class QmpGreeting:
    version: Mapping[str, Any]
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QmpReply:
    id: Any  # what the command carried; QEMU echoes it back unchanged
    value: Any = None  # the "return" member when the command succeeded
    error_class: str = ""  # set when it failed
    desc: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_class


@dataclass(frozen=True, slots=True)
class QmpEvent:
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)


QmpMessage = QmpGreeting | QmpReply | QmpEvent


def encode_command(name: str, arguments: Mapping[str, Any] | None, command_id: int) -> bytes:
    """One command as the line QEMU reads."""
    message: dict[str, Any] = {"execute": name, "id": command_id}
    if arguments:
        message["arguments"] = dict(arguments)
    return json.dumps(message, separators=(",", ":")).encode() + b"\r\n"


def parse_message(line: bytes) -> QmpMessage:
    """One line from QEMU; raises QmpProtocolError for anything that is not a QMP message."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise QmpProtocolError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise QmpProtocolError(f"not a JSON object: {line[:80]!r}")
    if "QMP" in message:
        info = message["QMP"]
        if not isinstance(info, dict):
            raise QmpProtocolError(f"malformed greeting: {line[:80]!r}")
        return QmpGreeting(info.get("version", {}), tuple(info.get("capabilities", ())))
    if "event" in message:
        data = message.get("data", {})
        return QmpEvent(str(message["event"]), data if isinstance(data, dict) else {})
    if "return" in message:
        return QmpReply(message.get("id"), message["return"])
    if "error" in message:
        error = message["error"]
        if not isinstance(error, dict):
            raise QmpProtocolError(f"malformed error reply: {line[:80]!r}")
        return QmpReply(
            message.get("id"),
            error_class=str(error.get("class", "GenericError")),
            desc=str(error.get("desc", "no description")),
        )
    raise QmpProtocolError(f"neither greeting, reply nor event: {line[:80]!r}")


class QmpClient:
    """One QMP session. Use `async with await QmpClient.connect(path) as qmp:`.

    Every wait (connect, greeting, reply, event) is bounded by `reply_timeout` seconds and raises
    QmpConnectionError when it runs out, so a wedged QEMU never hangs the caller.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._next_id = 1
        self._events: deque[QmpEvent] = deque(maxlen=_EVENTS_KEPT)
        self.greeting: QmpGreeting | None = None

    @classmethod
    async def connect(cls, path: str | Path, reply_timeout: float = 10.0) -> QmpClient:
        """Open the socket, read the greeting and leave negotiation mode."""
        try:
            async with asyncio.timeout(reply_timeout):
                reader, writer = await asyncio.open_unix_connection(str(path), limit=_LINE_LIMIT)
        except TimeoutError as exc:
            raise QmpConnectionError(f"no connection within {reply_timeout:g}s") from exc
        except OSError as exc:  # missing socket, refused, permission: the cause tells which
            raise QmpConnectionError(f"cannot connect: {exc.strerror or exc}") from exc
        client = cls(reader, writer, reply_timeout)
        try:
            first = await client._read()
            if not isinstance(first, QmpGreeting):
                raise QmpProtocolError(f"expected the QMP greeting, got {first!r}")
            client.greeting = first
            await client.execute("qmp_capabilities")
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> QmpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def execute(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run one command and return its "return" value; QmpCommandError if QEMU refuses it.

        Events that arrive before the reply are kept for `wait_event`.
        """
        command_id = self._next_id
        self._next_id += 1
        self._writer.write(encode_command(name, arguments, command_id))
        try:
            await self._writer.drain()
        except OSError as exc:
            raise QmpConnectionError(f"sending {name}: {exc}") from exc
        while True:
            message = await self._read()
            if isinstance(message, QmpEvent):
                self._events.append(message)
            elif isinstance(message, QmpReply) and message.id == command_id:
                if not message.ok:
                    raise QmpCommandError(name, message.error_class, message.desc)
                return message.value
            else:
                raise QmpProtocolError(f"unexpected message while waiting for {name}: {message!r}")

    async def wait_event(self, name: str) -> QmpEvent:
        """The first event called `name`, already received or still to come; other events stay
        kept for later calls."""
        for event in self._events:
            if event.name == name:
                self._events.remove(event)
                return event
        while True:
            message = await self._read()
            if isinstance(message, QmpEvent) and message.name == name:
                return message
            if isinstance(message, QmpEvent):
                self._events.append(message)
            else:
                raise QmpProtocolError(f"unexpected message while waiting for {name}: {message!r}")

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):  # the peer went first; nothing is left to flush
            await self._writer.wait_closed()

    async def _read(self) -> QmpMessage:
        try:
            async with asyncio.timeout(self._timeout):
                line = await self._reader.readline()
        except TimeoutError as exc:
            raise QmpConnectionError(f"no answer within {self._timeout:g}s") from exc
        except (OSError, ValueError) as exc:  # ValueError: a line over the stream limit
            raise QmpConnectionError(f"reading: {exc}") from exc
        if not line.endswith(b"\n"):
            raise QmpConnectionError("QEMU closed the connection")
        return parse_message(line)
