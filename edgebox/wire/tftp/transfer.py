"""One TFTP read transfer as a sans-IO state machine (RFC 1350, 2347, 7440).

Theory of operation. The adapter owns a socket bound to a fresh port (the server's TID) and one
`ReadTransfer`. It calls `start(now)` and sends what comes back, feeds every datagram from the
client's address to `receive(data, now)`, arms a timer for `get_timer()` and calls
`handle_timer(now)` when it fires; after every call it sends the returned datagrams to the client
and re-reads `get_timer()`. When `done` is true, `result` says how it ended and the adapter
closes the socket. Datagrams from any other address get `unknown_tid_error()` (RFC 1350 section
4) and never reach the transfer.

Blocks are tracked by an absolute index: 1 is the first DATA block, 0 stands for the OACK (which
the client acknowledges with ACK 0, RFC 2347), and `_final` is the last DATA block, always
shorter than blksize: empty when the file size is a multiple of blksize (RFC 1350 section 6). On
the wire a block number is the index modulo 65536: after block 65535 comes block 0. RFC 1350
does not say what follows 65535; rolling over to 0 is what tftp-hpa and most clients do, and it
lets a file of any size be sent (without it, 32 MiB is the limit at blksize 512).

Windows (RFC 7440): the server sends up to `windowsize` blocks after the highest acknowledged one
and arms the timer. An ACK for the last block of the window moves it forward; an ACK for a block
inside the window means the client lost the one after it, so the next window starts right after
the acknowledged block. Windowsize 1 is plain RFC 1350 lock-step. Because a window never spans
more than 65535 blocks, each outstanding block has a distinct 16-bit number, so an ACK maps to
exactly one block.

An ACK for the block already acknowledged, or for one before it, changes nothing and sends
nothing: answering duplicate ACKs is the Sorcerer's Apprentice bug, which doubles every packet
for the rest of the transfer once one ACK is delayed (RFC 1123 section 4.2.3.1). Only the timer
resends, and it resends the whole unacknowledged window; after `max_retransmits` resends without
progress the transfer fails with a reason, and tells the client with an ERROR.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from edgebox.wire.tftp.options import NegotiatedOptions, TransferLimits
from edgebox.wire.tftp.packets import (
    ACK,
    ERROR,
    RRQ,
    ErrorCode,
    Opcode,
    TftpParseError,
    encode_data,
    encode_error,
    encode_oack,
    parse_packet,
)

__all__ = [
    "DataSource",
    "Outcome",
    "ReadTransfer",
    "TransferResult",
    "TransferState",
    "TransferStateError",
    "unknown_tid_error",
]

_BLOCK_MODULUS = 0x10000


class DataSource(Protocol):
    """The file's bytes, supplied by the adapter. Synchronous; no partial reads."""

    def read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`; raise OSError if they cannot be read."""
        ...


class TransferState(enum.Enum):
    IDLE = "idle"  # constructed, start() not called yet
    SENDING = "sending"  # the OACK or a window of DATA is waiting for its ACK
    COMPLETED = "completed"  # the final block was acknowledged
    FAILED = "failed"  # ended early; `result.reason` says why


class Outcome(enum.Enum):
    COMPLETED = "completed"
    CLIENT_ERROR = "client error"  # the client sent ERROR (e.g. a PXE ROM's tsize probe)
    TIMED_OUT = "timed out"  # no progress after max_retransmits resends
    PROTOCOL_ERROR = "protocol error"  # the client sent something other than ACK/ERROR
    SOURCE_ERROR = "source error"  # the file could not be read, or changed size
    ABORTED = "aborted"  # ended by the server (shutdown)


# Which actions each state allows, and the states each may lead to. An action missing here is a
# bug in the adapter (e.g. receive() before start()); a finished transfer ignores late packets
# and timers, because datagrams can always arrive after the end.
_TRANSITIONS: dict[TransferState, dict[str, frozenset[TransferState]]] = {
    TransferState.IDLE: {
        "start": frozenset({TransferState.SENDING, TransferState.FAILED}),
        "abort": frozenset({TransferState.FAILED}),
    },
    TransferState.SENDING: {
        "receive": frozenset(
            {TransferState.SENDING, TransferState.COMPLETED, TransferState.FAILED}
        ),
        "handle_timer": frozenset({TransferState.SENDING, TransferState.FAILED}),
        "abort": frozenset({TransferState.FAILED}),
    },
    TransferState.COMPLETED: {
        "receive": frozenset({TransferState.COMPLETED}),
        "handle_timer": frozenset({TransferState.COMPLETED}),
        "abort": frozenset({TransferState.COMPLETED}),
    },
    TransferState.FAILED: {
        "receive": frozenset({TransferState.FAILED}),
        "handle_timer": frozenset({TransferState.FAILED}),
        "abort": frozenset({TransferState.FAILED}),
    },
}


class TransferStateError(RuntimeError):
    """An action the transfer's current state does not allow: a bug in the caller."""


@dataclass(frozen=True)
class TransferResult:
    outcome: Outcome
    reason: str
    bytes_sent: int  # DATA payload put on the wire, retransmissions included
    bytes_acknowledged: int  # file bytes the client confirmed
    retransmits: int  # timer-driven resends of the outstanding window (or OACK)
    duplicate_acks: int  # ACKs ignored as duplicate or stale

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.COMPLETED


class _SourceFailure(Exception):
    pass


def unknown_tid_error() -> bytes:
    """ERROR 5 for a datagram that reached a transfer's port from the wrong address."""
    return encode_error(ErrorCode.UNKNOWN_TID, "unknown transfer ID")


class ReadTransfer:
    """Sends one file to one client (one TID pair). Pure: time is an argument, no I/O."""

    def __init__(
        self,
        request: RRQ,
        options: NegotiatedOptions,
        size: int,
        source: DataSource,
        limits: TransferLimits,
    ) -> None:
        if size < 0:
            raise ValueError(f"file size {size} is negative")
        self.request = request
        self.options = options
        self.size = size
        self._source = source
        self._limits = limits
        self._state = TransferState.IDLE
        self._final = size // options.blksize + 1
        self._acked = -1 if options.send_oack else 0  # highest acknowledged block index
        self._sent_through = self._acked  # highest block index of the current window
        self._deadline: float | None = None
        self._retries = 0  # consecutive timeouts without progress
        self._retransmits = 0
        self._duplicate_acks = 0
        self._bytes_sent = 0
        self._result: TransferResult | None = None

    # --- observation -------------------------------------------------------------------

    @property
    def state(self) -> TransferState:
        return self._state

    @property
    def done(self) -> bool:
        return self._state in (TransferState.COMPLETED, TransferState.FAILED)

    @property
    def result(self) -> TransferResult | None:
        """How the transfer ended; None while it runs."""
        return self._result

    @property
    def bytes_acknowledged(self) -> int:
        return min(max(self._acked, 0) * self.options.blksize, self.size)

    def get_timer(self) -> float | None:
        """When `handle_timer` must be called next, or None if no timer is needed."""
        return None if self.done else self._deadline

    # --- actions -----------------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """The first flight: the OACK if options were accepted, else the first DATA window."""
        allowed = self._check("start")
        self._state = TransferState.SENDING
        return self._moved(allowed, self._send_window(now))

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """Handle one datagram from the client; returns the datagrams to send back."""
        allowed = self._check("receive")
        if self.done:
            return []
        return self._moved(allowed, self._receive(data, now))

    def handle_timer(self, now: float) -> list[bytes]:
        """Retransmit the unacknowledged window if its deadline has passed, or give up."""
        allowed = self._check("handle_timer")
        if self.done or self._deadline is None or now < self._deadline:
            return []
        if self._retries >= self._limits.max_retransmits:
            reason = (
                f"no ACK for block {self._wire(self._sent_through)} after "
                f"{self._retries} retransmits"
            )
            return self._moved(
                allowed, self._fail(Outcome.TIMED_OUT, reason, ErrorCode.NOT_DEFINED, "timed out")
            )
        self._retries += 1
        self._retransmits += 1
        return self._moved(allowed, self._send_window(now))

    def abort(self, message: str = "transfer aborted") -> list[bytes]:
        """End the transfer from the server side (e.g. shutdown); returns an ERROR to send."""
        allowed = self._check("abort")
        if self.done:
            return []
        packets = self._fail(Outcome.ABORTED, message, ErrorCode.NOT_DEFINED, message)
        return self._moved(allowed, packets)

    # --- internals ---------------------------------------------------------------------

    def _check(self, action: str) -> frozenset[TransferState]:
        try:
            return _TRANSITIONS[self._state][action]
        except KeyError:
            raise TransferStateError(
                f"cannot {action} a transfer in state {self._state.value!r}"
            ) from None

    def _moved(self, allowed: frozenset[TransferState], packets: list[bytes]) -> list[bytes]:
        if self._state not in allowed:  # pragma: no cover - guards the table against drift
            raise TransferStateError(f"transition to {self._state.value!r} is not in the table")
        return packets

    def _receive(self, data: bytes, now: float) -> list[bytes]:
        try:
            packet = parse_packet(data)
        except TftpParseError as exc:
            if data[:2] == Opcode.ERROR.to_bytes(2, "big"):
                return self._fail(Outcome.CLIENT_ERROR, f"client sent a malformed ERROR: {exc}")
            return self._protocol_error(f"malformed packet from client: {exc}")
        if isinstance(packet, ACK):
            return self._on_ack(packet.block, now)
        if isinstance(packet, ERROR):
            # RFC 1350 section 7: an ERROR is never acknowledged or answered.
            reason = f"client sent ERROR {packet.code}: {packet.message!r}"
            return self._fail(Outcome.CLIENT_ERROR, reason)
        return self._protocol_error(f"expected ACK, client sent {type(packet).__name__}")

    def _protocol_error(self, reason: str) -> list[bytes]:
        return self._fail(
            Outcome.PROTOCOL_ERROR, reason, ErrorCode.ILLEGAL_OPERATION, "illegal TFTP operation"
        )

    def _on_ack(self, wire_block: int, now: float) -> list[bytes]:
        index = self._ack_index(wire_block)
        if index is None or index == self._acked:
            self._duplicate_acks += 1  # duplicate or stale: never answered (see module doc)
            return []
        self._acked = index
        self._retries = 0
        if index == self._final:
            self._finish(Outcome.COMPLETED, f"sent {self.size} bytes")
            self._state = TransferState.COMPLETED
            return []
        return self._send_window(now)

    def _ack_index(self, wire_block: int) -> int | None:
        """The block index an ACK refers to, if it is the acknowledged one or outstanding."""
        delta = (wire_block - self._acked) % _BLOCK_MODULUS
        if delta > self._sent_through - self._acked:
            return None
        return self._acked + delta

    def _send_window(self, now: float) -> list[bytes]:
        self._deadline = now + self.options.timeout
        if self._acked < 0:
            self._sent_through = 0
            return [encode_oack(self.options.accepted)]
        last = min(self._acked + self.options.windowsize, self._final)
        try:
            packets = [self._data_packet(index) for index in range(self._acked + 1, last + 1)]
        except _SourceFailure as exc:
            return self._fail(
                Outcome.SOURCE_ERROR, str(exc), ErrorCode.NOT_DEFINED, "error reading file"
            )
        self._sent_through = last
        return packets

    def _data_packet(self, index: int) -> bytes:
        offset = (index - 1) * self.options.blksize
        length = min(self.options.blksize, self.size - offset)
        try:
            payload = self._source.read(offset, length)
        except OSError as exc:
            raise _SourceFailure(f"reading {length} bytes at offset {offset}: {exc}") from exc
        if len(payload) != length:
            raise _SourceFailure(
                f"source returned {len(payload)} bytes at offset {offset}, expected {length}"
                " (file changed while being sent?)"
            )
        self._bytes_sent += length
        return encode_data(self._wire(index), payload)

    @staticmethod
    def _wire(index: int) -> int:
        return index % _BLOCK_MODULUS

    def _fail(
        self,
        outcome: Outcome,
        reason: str,
        code: ErrorCode | None = None,
        message: str = "",
    ) -> list[bytes]:
        self._finish(outcome, reason)
        self._state = TransferState.FAILED
        return [] if code is None else [encode_error(code, message)]

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self._deadline = None
        self._result = TransferResult(
            outcome=outcome,
            reason=reason,
            bytes_sent=self._bytes_sent,
            bytes_acknowledged=self.bytes_acknowledged,
            retransmits=self._retransmits,
            duplicate_acks=self._duplicate_acks,
        )
