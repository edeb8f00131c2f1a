"""TFTP packet codec: RFC 1350 packets plus the OACK of RFC 2347.

Every packet starts with a 2-byte big-endian opcode. Requests (RRQ/WRQ) carry NUL-terminated
strings: filename, mode, then RFC 2347 option name/value pairs. DATA and ACK carry a 2-byte
block number, ERROR a 2-byte code and a NUL-terminated message, OACK only option pairs.

`parse_packet` turns one datagram into a frozen dataclass or raises `TftpParseError` (a
`ValueError`) that says what was wrong; it never raises anything else, whatever the bytes.
The `encode_*` functions are its inverse; they raise `ValueError` for values that cannot be
put on the wire (a NUL inside a string, a block number outside 0..65535), which is a bug in
the caller, not peer garbage.

Leniencies, each on purpose:
- Option names are lower-cased (RFC 2347: "option names are case insensitive") and values kept
  as strings; interpreting them is `options.negotiate_options`'s job.
- Extra NUL bytes after the last option of a request are accepted as padding: an empty option
  name can only mean "no more options", so refusing it would only break odd clients.
- An ERROR's message may lack its terminating NUL and may hold any bytes: a client's ERROR must
  always be understood as "stop", so its human-readable part never makes it unparseable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ACK",
    "DATA",
    "ERROR",
    "MODES",
    "OACK",
    "RRQ",
    "WRQ",
    "ErrorCode",
    "Opcode",
    "Options",
    "Packet",
    "TftpParseError",
    "encode_ack",
    "encode_data",
    "encode_error",
    "encode_oack",
    "encode_packet",
    "encode_request",
    "parse_packet",
]

MAX_BLOCK_NUMBER = 0xFFFF

# RFC 1350 section 5: the three transfer modes, compared case-insensitively.
MODES = frozenset({"netascii", "octet", "mail"})

# RFC 2347 option name/value pairs, in the order the peer sent them; names are lower-case.
Options = tuple[tuple[str, str], ...]


class Opcode(enum.IntEnum):
    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6  # RFC 2347


class ErrorCode(enum.IntEnum):
    NOT_DEFINED = 0  # "Not defined, see error message (if any)."
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_REFUSED = 8  # RFC 2347: "request not acceptable due to option negotiation"


class TftpParseError(ValueError):
    """A datagram that is not a well-formed TFTP packet; the message says what was wrong."""


def _option_value(options: Options, name: str) -> str | None:
    wanted = name.lower()
    for key, value in options:
        if key == wanted:
            return value
    return None


@dataclass(frozen=True)
class RRQ:
    filename: str
    mode: str  # lower-case, one of MODES
    options: Options = ()

    def option(self, name: str) -> str | None:
        """The value of option `name` (case-insensitive), or None if it was not sent."""
        return _option_value(self.options, name)


@dataclass(frozen=True)
class WRQ:
    filename: str
    mode: str
    options: Options = ()

    def option(self, name: str) -> str | None:
        return _option_value(self.options, name)


@dataclass(frozen=True)
class DATA:
    block: int
    data: bytes


@dataclass(frozen=True)
class ACK:
    block: int


@dataclass(frozen=True)
class ERROR:
    code: int  # usually an ErrorCode; peers may send any 16-bit value
    message: str


@dataclass(frozen=True)
class OACK:
    options: Options


Packet = RRQ | WRQ | DATA | ACK | ERROR | OACK


# --- parsing -----------------------------------------------------------------------------


def parse_packet(data: bytes) -> Packet:
    """Decode one TFTP datagram. Raises `TftpParseError` and nothing else on bad input."""
    data = bytes(data)
    if len(data) < 2:
        raise TftpParseError(f"datagram of {len(data)} bytes is too short for an opcode")
    opcode = int.from_bytes(data[:2], "big")
    body = data[2:]
    if opcode in (Opcode.RRQ, Opcode.WRQ):
        return _parse_request(opcode, body)
    if opcode == Opcode.DATA:
        block = _parse_block(body, "DATA")
        return DATA(block, body[2:])
    if opcode == Opcode.ACK:
        if len(body) != 2:
            raise TftpParseError(f"ACK must be 4 bytes, got {len(data)}")
        return ACK(_parse_block(body, "ACK"))
    if opcode == Opcode.ERROR:
        return _parse_error(body)
    if opcode == Opcode.OACK:
        if not body:
            return OACK(())
        return OACK(_parse_options(_split_strings(body, "OACK"), "OACK"))
    raise TftpParseError(f"unknown opcode {opcode}")


def _parse_block(body: bytes, kind: str) -> int:
    if len(body) < 2:
        raise TftpParseError(f"{kind} is too short for a block number")
    return int.from_bytes(body[:2], "big")


def _split_strings(body: bytes, kind: str) -> list[bytes]:
    if not body.endswith(b"\0"):
        raise TftpParseError(f"{kind} does not end with a NUL byte")
    return body[:-1].split(b"\0")


def _decode_ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise TftpParseError(f"{what} is not ASCII: {raw[:32]!r}") from None


def _parse_request(opcode: int, body: bytes) -> RRQ | WRQ:
    kind = Opcode(opcode).name
    fields = _split_strings(body, kind)
    if len(fields) < 2:
        raise TftpParseError(f"{kind} has a filename but no mode")
    try:
        filename = fields[0].decode("utf-8")
    except UnicodeDecodeError:
        raise TftpParseError(f"{kind} filename is not UTF-8: {fields[0][:32]!r}") from None
    mode = _decode_ascii(fields[1], f"{kind} mode").lower()
    if mode not in MODES:
        raise TftpParseError(f"{kind} has unknown transfer mode {mode!r}")
    options = _parse_options(fields[2:], kind)
    if opcode == Opcode.RRQ:
        return RRQ(filename, mode, options)
    return WRQ(filename, mode, options)


def _parse_options(fields: list[bytes], kind: str) -> Options:
    options: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index in range(0, len(fields), 2):
        raw_name = fields[index]
        if not raw_name:
            # An empty name ends the options; only padding NULs may follow.
            if any(fields[index:]):
                raise TftpParseError(f"{kind} has an option with an empty name")
            break
        name = _decode_ascii(raw_name, f"{kind} option name").lower()
        if index + 1 >= len(fields):
            raise TftpParseError(f"{kind} option {name!r} has no value")
        value = _decode_ascii(fields[index + 1], f"{kind} option {name!r} value")
        if name in seen:
            raise TftpParseError(f"{kind} repeats option {name!r}")
        seen.add(name)
        options.append((name, value))
    return tuple(options)


def _parse_error(body: bytes) -> ERROR:
    if len(body) < 2:
        raise TftpParseError("ERROR is too short for an error code")
    code = int.from_bytes(body[:2], "big")
    message = body[2:].split(b"\0", 1)[0]
    return ERROR(code, message.decode("utf-8", errors="replace"))


# --- encoding ----------------------------------------------------------------------------


def encode_request(request: RRQ | WRQ) -> bytes:
    opcode = Opcode.RRQ if isinstance(request, RRQ) else Opcode.WRQ
    parts = [
        _encode_string(request.filename, "filename", "utf-8"),
        _encode_string(request.mode, "mode", "ascii"),
        _encode_options(request.options),
    ]
    return opcode.to_bytes(2, "big") + b"".join(parts)


def encode_data(block: int, data: bytes) -> bytes:
    return Opcode.DATA.to_bytes(2, "big") + _encode_block(block) + data


def encode_ack(block: int) -> bytes:
    return Opcode.ACK.to_bytes(2, "big") + _encode_block(block)


def encode_error(code: int, message: str) -> bytes:
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"error code {code} does not fit in 16 bits")
    text = _encode_string(message, "error message", "utf-8")
    return Opcode.ERROR.to_bytes(2, "big") + code.to_bytes(2, "big") + text


def encode_oack(options: Options) -> bytes:
    return Opcode.OACK.to_bytes(2, "big") + _encode_options(options)


def encode_packet(packet: Packet) -> bytes:
    if isinstance(packet, RRQ | WRQ):
        return encode_request(packet)
    if isinstance(packet, DATA):
        return encode_data(packet.block, packet.data)
    if isinstance(packet, ACK):
        return encode_ack(packet.block)
    if isinstance(packet, ERROR):
        return encode_error(packet.code, packet.message)
    return encode_oack(packet.options)


def _encode_block(block: int) -> bytes:
    if not 0 <= block <= MAX_BLOCK_NUMBER:
        raise ValueError(f"block number {block} is outside 0..{MAX_BLOCK_NUMBER}")
    return block.to_bytes(2, "big")


def _encode_string(text: str, what: str, encoding: str) -> bytes:
    if "\0" in text:
        raise ValueError(f"{what} {text!r} contains a NUL character")
    try:
        return text.encode(encoding) + b"\0"
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r} cannot be encoded as {encoding}") from None


def _encode_options(options: Options) -> bytes:
    parts: list[bytes] = []
    for name, value in options:
        if not name:
            raise ValueError("option names must not be empty")
        parts.append(_encode_string(name, "option name", "ascii"))
        parts.append(_encode_string(value, f"option {name!r} value", "ascii"))
    return b"".join(parts)
