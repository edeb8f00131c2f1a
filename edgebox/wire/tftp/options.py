"""TFTP option negotiation (RFC 2347 framework; RFC 2348, 2349, 7440 options) and limits.

The client lists options in its RRQ; the server answers with an OACK that echoes the options it
accepts, with the value it will use, and silently leaves out the rest (RFC 2347: "options not
acknowledged by the server must be ignored by the client"). If nothing is accepted there is
no OACK and the transfer starts with DATA block 1 exactly as in RFC 1350.

Per option, what this server does with the client's value:

| option     | RFC  | valid range  | accepted as                                         |
|------------|------|--------------|-----------------------------------------------------|
| blksize    | 2348 | 8..65464     | min(value, limits.max_blksize)                      |
| windowsize | 7440 | 1..65535     | min(value, limits.max_windowsize)                   |
| timeout    | 2349 | 1..255 s     | the value, if <= limits.max_timeout, else declined  |
| tsize      | 2349 | integer >= 0 | the real file size (a client sends 0 in an RRQ)     |

RFC 2349 lets a server decline a timeout but not change it, hence no clamping there.

A value that is not a plain decimal integer, or is outside the valid range, is ignored (left out
of the OACK), as is any option this server does not know ("multicast", vendor options).

Defaults (`TransferLimits`), and why:
- max_blksize 1468 (it caps what a client may ask for; a client that asks for nothing gets
  RFC 1350's 512): the largest block that fits one Ethernet frame (1500 MTU - 20 IP - 8 UDP -
  4 TFTP header), so a block is never IP-fragmented on the usual boot network. A site with jumbo
  frames can raise it; a client asking for less always gets what it asked for.
- max_windowsize 16: a window of 16 x 1468 bytes (about 23 KiB) is sent back to back; small
  enough for the receive rings of PXE ROM network drivers, large enough to hide most of the
  round trip on a LAN.
- default_timeout 1 s: the retransmit interval when the client does not send "timeout"; a LAN
  round trip is well under that, and a lost packet costs one second, not several.
- max_timeout 10 s: a longer client timeout is declined (the default interval applies), because
  the interval times the retry budget is how long a silent client holds a transfer slot: at
  255 s a handful of forged RRQs would keep the server busy for 25 minutes.
- max_retransmits 5: after five resends of the same window with no progress (six timeouts,
  about 6 s at the default interval) the client is presumed gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgebox.wire.tftp.packets import Options

__all__ = [
    "DEFAULT_BLKSIZE",
    "NegotiatedOptions",
    "TransferLimits",
    "negotiate_options",
]

DEFAULT_BLKSIZE = 512  # RFC 1350
MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348
MIN_WINDOWSIZE, MAX_WINDOWSIZE = 1, 65535  # RFC 7440
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255  # RFC 2349, seconds

# More digits than any valid value has; longer strings are refused before int() sees them.
_MAX_DIGITS = 20


@dataclass(frozen=True)
class TransferLimits:
    """What the server allows a client to negotiate, and its own retransmission policy."""

    max_blksize: int = 1468
    max_windowsize: int = 16
    default_timeout: float = 1.0
    max_timeout: int = 10
    max_retransmits: int = 5

    def __post_init__(self) -> None:
        if not MIN_BLKSIZE <= self.max_blksize <= MAX_BLKSIZE:
            raise ValueError(f"max_blksize {self.max_blksize} outside {MIN_BLKSIZE}..{MAX_BLKSIZE}")
        if not MIN_WINDOWSIZE <= self.max_windowsize <= MAX_WINDOWSIZE:
            raise ValueError(
                f"max_windowsize {self.max_windowsize} outside {MIN_WINDOWSIZE}..{MAX_WINDOWSIZE}"
            )
        if not self.default_timeout > 0:
            raise ValueError(f"default_timeout {self.default_timeout} must be positive")
        if not MIN_TIMEOUT <= self.max_timeout <= MAX_TIMEOUT:
            raise ValueError(f"max_timeout {self.max_timeout} outside {MIN_TIMEOUT}..{MAX_TIMEOUT}")
        if self.max_retransmits < 0:
            raise ValueError(f"max_retransmits {self.max_retransmits} must not be negative")


@dataclass(frozen=True)
class NegotiatedOptions:
    """The parameters of one transfer, and the option pairs the OACK must carry."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float = 1.0  # seconds between retransmissions
    accepted: Options = ()  # empty: no OACK, the transfer starts with DATA 1

    def __post_init__(self) -> None:
        if not MIN_BLKSIZE <= self.blksize <= MAX_BLKSIZE:
            raise ValueError(f"blksize {self.blksize} outside {MIN_BLKSIZE}..{MAX_BLKSIZE}")
        # A window must not span more than 65535 blocks: beyond that two outstanding blocks
        # would share a 16-bit block number and an ACK would be ambiguous.
        if not MIN_WINDOWSIZE <= self.windowsize <= MAX_WINDOWSIZE:
            raise ValueError(
                f"windowsize {self.windowsize} outside {MIN_WINDOWSIZE}..{MAX_WINDOWSIZE}"
            )
        if not self.timeout > 0:
            raise ValueError(f"timeout {self.timeout} must be positive")

    @property
    def send_oack(self) -> bool:
        return bool(self.accepted)


def _parse_uint(value: str) -> int | None:
    if not value or len(value) > _MAX_DIGITS or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def _in_range(value: str, low: int, high: int) -> int | None:
    number = _parse_uint(value)
    if number is None or not low <= number <= high:
        return None
    return number


def _accept_blksize(value: str, file_size: int, limits: TransferLimits) -> int | None:
    number = _in_range(value, MIN_BLKSIZE, MAX_BLKSIZE)
    return None if number is None else min(number, limits.max_blksize)


def _accept_windowsize(value: str, file_size: int, limits: TransferLimits) -> int | None:
    number = _in_range(value, MIN_WINDOWSIZE, MAX_WINDOWSIZE)
    return None if number is None else min(number, limits.max_windowsize)


def _accept_timeout(value: str, file_size: int, limits: TransferLimits) -> int | None:
    number = _in_range(value, MIN_TIMEOUT, MAX_TIMEOUT)
    return None if number is None or number > limits.max_timeout else number


def _accept_tsize(value: str, file_size: int, limits: TransferLimits) -> int | None:
    # RFC 2349 asks for "0" in an RRQ; any well-formed size is answered the same way.
    return None if _parse_uint(value) is None else file_size


_Acceptor = Callable[[str, int, TransferLimits], int | None]

_ACCEPTORS: dict[str, _Acceptor] = {
    "blksize": _accept_blksize,
    "windowsize": _accept_windowsize,
    "timeout": _accept_timeout,
    "tsize": _accept_tsize,
}


def negotiate_options(
    requested: Options, file_size: int, limits: TransferLimits
) -> NegotiatedOptions:
    """Decide the transfer parameters for an RRQ's options (names already lower-case)."""
    accepted: dict[str, int] = {}
    for name, value in requested:
        acceptor = _ACCEPTORS.get(name.lower())
        if acceptor is None:
            continue  # RFC 2347: unknown options are not acknowledged
        number = acceptor(value, file_size, limits)
        if number is not None:
            accepted[name.lower()] = number
    return NegotiatedOptions(
        blksize=accepted.get("blksize", DEFAULT_BLKSIZE),
        windowsize=accepted.get("windowsize", 1),
        timeout=float(accepted.get("timeout", limits.default_timeout)),
        accepted=tuple((name, str(number)) for name, number in accepted.items()),
    )
