"""The IPMI worker's protocol: line-delimited JSON between the driver and its worker process,
and the sorting of pyghmi's error texts into kinds of failure. Pure; no pyghmi, no I/O.

    parent → worker, first line: the session settings (`SessionSettings.encode`)
    parent → worker: {"id": 7, "op": "query"}       ops: see OPS
    worker → parent: {"id": 7, "ok": true, "result": "on"}
                  or {"id": 7, "ok": false, "failure": "credentials", "detail": "..."}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# What the parent can ask; the pyghmi words they map to are in `ipmi_worker.run_request`.
OPS = frozenset({"on", "off", "soft_off", "cycle", "query", "boot"})
BOOT_DEVICES = frozenset({"network", "hd"})  # pyghmi's names for PXE and the default disk


class Failure(StrEnum):
    """Why a call failed, in the words the driver turns into fatal or retryable errors."""

    CREDENTIALS = "credentials"  # wrong user, password or BMC key (k_g)
    PRIVILEGE = "privilege"  # the user may not have this privilege level, or do this at it
    CIPHER_SUITE = "cipher_suite"  # the BMC does not offer the configured cipher suite
    UNSUPPORTED = "unsupported"  # the BMC does not implement the command or the value
    NO_ANSWER = "no_answer"  # timeout, unreachable, session lost
    BUSY = "busy"  # the BMC said to come back later
    FAILED = "failed"  # anything else


class ProtocolError(ValueError):
    """A line that is not what the protocol says."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    privilege: int  # 2 user, 3 operator, 4 administrator (IPMI's numbers)
    cipher_suite: int  # 3 (SHA-1) or 17 (SHA-256)
    k_g: str = field(repr=False)  # the BMC key as hex, "" for none
    idle_exit: float

    def encode(self) -> str:
        return json.dumps(
            {
                "host": self.host,
                "port": self.port,
                "username": self.username,
                "password": self.password,
                "privilege": self.privilege,
                "cipher_suite": self.cipher_suite,
                "k_g": self.k_g,
                "idle_exit": self.idle_exit,
            }
        )

    @classmethod
    def parse(cls, line: str) -> SessionSettings:
        data = _object(line)
        try:
            return cls(
                host=_typed(data, "host", str),
                port=_typed(data, "port", int),
                username=_typed(data, "username", str),
                password=_typed(data, "password", str),
                privilege=_typed(data, "privilege", int),
                cipher_suite=_typed(data, "cipher_suite", int),
                k_g=_typed(data, "k_g", str),
                idle_exit=float(_typed(data, "idle_exit", (int, float))),
            )
        except KeyError as exc:
            raise ProtocolError(f"settings without {exc}") from None


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    device: str = ""  # for "boot"
    persistent: bool = False  # for "boot"


@dataclass(frozen=True, slots=True)
class Reply:
    id: int
    ok: bool
    result: str = ""  # "on"/"off" for "query"
    failure: Failure | None = None
    detail: str = ""


def encode_request(request: Request) -> str:
    data: dict[str, Any] = {"id": request.id, "op": request.op}
    if request.op == "boot":
        data.update(device=request.device, persistent=request.persistent)
    return json.dumps(data)


def parse_request(line: str) -> Request:
    data = _object(line)
    try:
        request = Request(
            id=_typed(data, "id", int),
            op=_typed(data, "op", str),
            device=_typed(data, "device", str) if "device" in data else "",
            persistent=_typed(data, "persistent", bool) if "persistent" in data else False,
        )
    except KeyError as exc:
        raise ProtocolError(f"request without {exc}") from None
    if request.op not in OPS:
        raise ProtocolError(f"unknown op {request.op!r}")
    if request.op == "boot" and request.device not in BOOT_DEVICES:
        raise ProtocolError(f"unknown boot device {request.device!r}")
    return request


def encode_reply(reply: Reply) -> str:
    if reply.ok:
        return json.dumps({"id": reply.id, "ok": True, "result": reply.result})
    failure = reply.failure or Failure.FAILED
    return json.dumps({"id": reply.id, "ok": False, "failure": failure, "detail": reply.detail})


def parse_reply(line: str) -> Reply:
    data = _object(line)
    try:
        if _typed(data, "ok", bool):
            return Reply(_typed(data, "id", int), True, result=_typed(data, "result", str))
        return Reply(
            _typed(data, "id", int),
            False,
            failure=Failure(_typed(data, "failure", str)),
            detail=_typed(data, "detail", str),
        )
    except KeyError as exc:
        raise ProtocolError(f"reply without {exc}") from None
    except ValueError as exc:  # an unknown failure word
        raise ProtocolError(str(exc)) from None


def _object(line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError:
        raise ProtocolError(f"not JSON: {line[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"not a JSON object: {line[:80]!r}")
    return data


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data[key]
    # bool is an int in Python; the protocol keeps them apart.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"{key}: unexpected {type(value).__name__} {value!r}")
    return value


# pyghmi reports failures as English text (its login errors carry no completion code, and
# set_power drops the code it has), so they are told apart by words. The texts come from
# pyghmi's session code and its tables of IPMI completion codes (IPMI 2.0 table 5-2) and
# RMCP+ status codes (table 13-15). Checked in this order; the first match wins.
_PATTERNS: tuple[tuple[Failure, tuple[str, ...]], ...] = (
    (
        Failure.BUSY,
        (
            "busy",
            "insufficient resources",
            "no available login slots",
            "no slot available",
            "initialization in progress",
            "update mode",
            "timeout while processing",
            "duplicated request",
            "already active",
        ),
    ),
    (
        Failure.CIPHER_SUITE,
        (
            "cipher suite",
            "authentication algorithm",
            "integrity algorithm",
            "confidentiality algorithm",
            "no matching integrity payload",
        ),
    ),
    (
        Failure.CREDENTIALS,
        (
            "password",
            "unauthorized name",
            "invalid user name",
            "null user",
            "username too long",
            "integrity code",  # RAKP4 does not verify: wrong k_g
            "integrity check value",
        ),
    ),
    (Failure.PRIVILEGE, ("privilege", "unauthorized role", "invalid role")),
    (
        Failure.UNSUPPORTED,
        (
            "invalid command",
            "not supported",
            "unsupported",
            "invalid data field",
            "unknown power state",
            "unknown bootdevice",
            "subfunction disabled",
            "illegal",
        ),
    ),
)

# pyghmi's words for "nobody answered": an empty message when the login times out.
_NO_ANSWER = frozenset({"", "none", "timeout", "session no longer connected"})


def classify(detail: str) -> Failure:
    """The kind of failure a pyghmi error text describes."""
    text = detail.strip().lower()
    if text in _NO_ANSWER or text.startswith("session failed to initialize"):
        return Failure.NO_ANSWER
    for failure, words in _PATTERNS:
        if any(word in text for word in words):
            return failure
    return Failure.FAILED


def failure_of(exc: Exception) -> tuple[Failure, str]:
    """The failure kind and a description of an exception raised while talking to the BMC."""
    if isinstance(exc, OSError):  # unreachable network, unresolvable host name
        return Failure.NO_ANSWER, str(exc) or type(exc).__name__
    first = exc.args[0] if exc.args else None
    detail = "" if first is None else str(first)
    return classify(detail), detail
