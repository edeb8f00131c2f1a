"""The TFTP request dispatcher: one datagram on port 69 in, one decision out.

`TftpServer.handle_request` parses a datagram that arrived on the well-known port and returns:
- `StartTransfer`: a new `ReadTransfer`, already started; the adapter sends `packets` from a
  fresh socket (the server's TID) and runs the transfer as `transfer.py` describes;
- `Reply`: one ERROR datagram to send to the client (refusals);
- `Drop`: nothing to send; `reason` is for the log.

The server is read-only (RFC 1350 WRQ is answered with ERROR 2) and serves octet mode only.
netascii is refused rather than served as octet, because RFC 1350 netascii needs CR/LF
translation that changes the bytes and the size (tsize would lie), and every boot file is binary;
"mail" is obsolete. Files are looked up through a `resolver` the adapter passes in, which turns a
normalised, root-relative path into a `FileSource` or a `FileError` (it must not raise).

Concurrency is bounded by `max_transfers`. Beyond the bound the default is to answer
ERROR 0 "server busy, retry" instead of dropping the request silently as dnsmasq and atftpd do:
silence only makes the client wait its whole RRQ timeout before trying again, and the ERROR says
in the client's log what happened. Firmware that treats any ERROR as fatal can be given silence
with `BusyResponse.DROP`. Transfers leave the count as soon as they are `done`; `release` forgets
one the adapter tore down for another reason.

An RRQ from an address that already has a transfer running is dropped: it is almost always the
client's retransmission of the same RRQ because the first OACK/DATA was slow or lost, and the
running transfer's timer will resend it. (A client that rebooted and reused its source port looks
the same; it succeeds on its next RRQ retry once the stale transfer times out.)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edgebox.wire.tftp.options import TransferLimits, negotiate_options
from edgebox.wire.tftp.packets import (
    ERROR,
    RRQ,
    WRQ,
    ErrorCode,
    Opcode,
    TftpParseError,
    encode_error,
    parse_packet,
)
from edgebox.wire.tftp.paths import RequestPathError, normalise_request_path
from edgebox.wire.tftp.transfer import DataSource, ReadTransfer

__all__ = [
    "Address",
    "BusyResponse",
    "Decision",
    "Drop",
    "FileError",
    "FileErrorKind",
    "FileSource",
    "Reply",
    "Resolver",
    "ServerStats",
    "StartTransfer",
    "TftpServer",
    "TftpServerConfig",
]

Address = tuple[str, int]  # (host, port); the adapter drops IPv6 flowinfo/scope_id


class FileSource(DataSource, Protocol):
    """An opened file: its size in bytes, and `read(offset, length)`."""

    @property
    def size(self) -> int: ...


class FileErrorKind(enum.Enum):
    NOT_FOUND = "not found"  # no such file under any root -> ERROR 1
    ACCESS_VIOLATION = "access violation"  # outside the roots, a directory, unreadable -> ERROR 2
    UNAVAILABLE = "unavailable"  # an I/O error opening it -> ERROR 0


@dataclass(frozen=True)
class FileError:
    kind: FileErrorKind
    detail: str = ""  # for the log only; the client gets a fixed message per kind


Resolver = Callable[[str], FileSource | FileError]

_FILE_ERROR_REPLIES: dict[FileErrorKind, tuple[ErrorCode, str]] = {
    FileErrorKind.NOT_FOUND: (ErrorCode.FILE_NOT_FOUND, "file not found"),
    FileErrorKind.ACCESS_VIOLATION: (ErrorCode.ACCESS_VIOLATION, "access violation"),
    FileErrorKind.UNAVAILABLE: (ErrorCode.NOT_DEFINED, "file unavailable"),
}


class BusyResponse(enum.Enum):
    ERROR = "error"  # answer ERROR 0 "server busy, retry"
    DROP = "drop"  # say nothing; the client retries after its own timeout


@dataclass(frozen=True)
class TftpServerConfig:
    limits: TransferLimits = field(default_factory=TransferLimits)
    max_transfers: int = 128
    busy_response: BusyResponse = BusyResponse.ERROR

    def __post_init__(self) -> None:
        if self.max_transfers < 1:
            raise ValueError(f"max_transfers {self.max_transfers} must be at least 1")


@dataclass(frozen=True, eq=False)
class StartTransfer:
    client_addr: Address
    filename: str  # the normalised path the resolver was given
    transfer: ReadTransfer
    packets: tuple[bytes, ...]  # transfer.start(now) output: the OACK or first DATA window


@dataclass(frozen=True)
class Reply:
    client_addr: Address
    packet: bytes
    reason: str


@dataclass(frozen=True)
class Drop:
    reason: str


Decision = StartTransfer | Reply | Drop


@dataclass(frozen=True)
class ServerStats:
    active_transfers: int
    started: int
    refused: int  # requests answered with an ERROR, busy ones included
    refused_busy: int  # requests turned away (answered or dropped) because of the bound
    dropped: int


class TftpServer:
    """Decides what to do with each datagram on the request port. Pure; no sockets."""

    def __init__(self, config: TftpServerConfig | None = None) -> None:
        self.config = config or TftpServerConfig()
        self._transfers: dict[Address, ReadTransfer] = {}
        self._started = 0
        self._refused = 0
        self._refused_busy = 0
        self._dropped = 0

    @property
    def active_transfers(self) -> int:
        self._forget_finished()
        return len(self._transfers)

    def stats(self) -> ServerStats:
        return ServerStats(
            active_transfers=self.active_transfers,
            started=self._started,
            refused=self._refused,
            refused_busy=self._refused_busy,
            dropped=self._dropped,
        )

    def release(self, client_addr: Address) -> None:
        """Forget the transfer to `client_addr` (the adapter stopped running it)."""
        self._transfers.pop(client_addr, None)

    def handle_request(
        self, data: bytes, client_addr: Address, now: float, resolver: Resolver
    ) -> Decision:
        self._forget_finished()
        try:
            packet = parse_packet(data)
        except TftpParseError as exc:
            if data[:2] == Opcode.ERROR.to_bytes(2, "big"):
                return self._drop(f"malformed ERROR on the request port: {exc}")
            return self._refuse(
                client_addr, ErrorCode.ILLEGAL_OPERATION, "malformed request", f"{exc}"
            )
        if isinstance(packet, ERROR):
            # RFC 1350 section 7: never answer an ERROR, or two peers can loop forever.
            return self._drop(f"ERROR {packet.code} on the request port: {packet.message!r}")
        if isinstance(packet, WRQ):
            return self._refuse(
                client_addr,
                ErrorCode.ACCESS_VIOLATION,
                "writes are not accepted",
                f"write request for {packet.filename!r} refused: TFTP is read-only",
            )
        if not isinstance(packet, RRQ):
            name = type(packet).__name__
            return self._refuse(
                client_addr,
                ErrorCode.ILLEGAL_OPERATION,
                "expected a read request",
                f"{name} on the request port",
            )
        return self._on_read_request(packet, client_addr, now, resolver)

    def _on_read_request(
        self, request: RRQ, client_addr: Address, now: float, resolver: Resolver
    ) -> Decision:
        if client_addr in self._transfers:
            return self._drop(f"repeated RRQ for {request.filename!r}: transfer already running")
        if request.mode != "octet":
            return self._refuse(
                client_addr,
                ErrorCode.NOT_DEFINED,
                "only octet mode is supported",
                f"{request.mode} mode requested for {request.filename!r}",
            )
        try:
            path = normalise_request_path(request.filename)
        except RequestPathError as exc:
            return self._refuse(
                client_addr, ErrorCode.ACCESS_VIOLATION, "access violation", str(exc)
            )
        if len(self._transfers) >= self.config.max_transfers:
            return self._busy(client_addr, path)
        found = resolver(path)
        if isinstance(found, FileError):
            code, message = _FILE_ERROR_REPLIES[found.kind]
            return self._refuse(
                client_addr, code, message, f"{path!r}: {found.kind.value} {found.detail}"
            )
        return self._start(request, path, found, client_addr, now)

    def _start(
        self, request: RRQ, path: str, source: FileSource, client_addr: Address, now: float
    ) -> Decision:
        limits = self.config.limits
        size = source.size
        options = negotiate_options(request.options, size, limits)
        transfer = ReadTransfer(request, options, size, source, limits)
        packets = transfer.start(now)
        if transfer.result is not None:  # the first read failed
            self._refused += 1
            return Reply(client_addr, packets[0], f"{path!r}: {transfer.result.reason}")
        self._transfers[client_addr] = transfer
        self._started += 1
        return StartTransfer(client_addr, path, transfer, tuple(packets))

    def _busy(self, client_addr: Address, path: str) -> Decision:
        self._refused_busy += 1
        reason = f"{path!r}: {len(self._transfers)} transfers running, the limit"
        if self.config.busy_response is BusyResponse.DROP:
            return self._drop(reason)
        return self._refuse(client_addr, ErrorCode.NOT_DEFINED, "server busy, retry", reason)

    def _refuse(self, client_addr: Address, code: ErrorCode, message: str, reason: str) -> Reply:
        self._refused += 1
        return Reply(client_addr, encode_error(code, message), f"{message}: {reason}")

    def _drop(self, reason: str) -> Drop:
        self._dropped += 1
        return Drop(reason)

    def _forget_finished(self) -> None:
        for addr in [addr for addr, transfer in self._transfers.items() if transfer.done]:
            del self._transfers[addr]
