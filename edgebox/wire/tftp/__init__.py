"""TFTP server protocol core: read-only RFC 1350 with RFC 2347/2348/2349/7440 options.

Sans-IO, standard library only: bytes and time go in, datagrams and decisions come out.
- `packets`: the codec (`parse_packet`, `encode_*`, `TftpParseError`).
- `options`: option negotiation and the server's `TransferLimits`.
- `transfer`: `ReadTransfer`, one file to one client, with windows, timers and retries.
- `server`: `TftpServer`, the port-69 dispatcher with the concurrency bound.
- `paths`: `normalise_request_path`, the pure half of path safety.
The asyncio adapter (sockets, timers, opening files under the roots) lives in `edgebox.net`.
"""

from edgebox.wire.tftp.options import NegotiatedOptions, TransferLimits, negotiate_options
from edgebox.wire.tftp.packets import (
    ACK,
    DATA,
    ERROR,
    OACK,
    RRQ,
    WRQ,
    ErrorCode,
    Opcode,
    Options,
    Packet,
    TftpParseError,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
    encode_packet,
    encode_request,
    parse_packet,
)
from edgebox.wire.tftp.paths import RequestPathError, normalise_request_path
from edgebox.wire.tftp.server import (
    Address,
    BusyResponse,
    Decision,
    Drop,
    FileError,
    FileErrorKind,
    FileSource,
    Reply,
    Resolver,
    ServerStats,
    StartTransfer,
    TftpServer,
    TftpServerConfig,
)
from edgebox.wire.tftp.transfer import (
    DataSource,
    Outcome,
    ReadTransfer,
    TransferResult,
    TransferState,
    TransferStateError,
    unknown_tid_error,
)

__all__ = [
    "ACK",
    "DATA",
    "ERROR",
    "OACK",
    "RRQ",
    "WRQ",
    "Address",
    "BusyResponse",
    "DataSource",
    "Decision",
    "Drop",
    "ErrorCode",
    "FileError",
    "FileErrorKind",
    "FileSource",
    "NegotiatedOptions",
    "Opcode",
    "Options",
    "Outcome",
    "Packet",
    "ReadTransfer",
    "Reply",
    "RequestPathError",
    "Resolver",
    "ServerStats",
    "StartTransfer",
    "TftpParseError",
    "TftpServer",
    "TftpServerConfig",
    "TransferLimits",
    "TransferResult",
    "TransferState",
    "TransferStateError",
    "encode_ack",
    "encode_data",
    "encode_error",
    "encode_oack",
    "encode_packet",
    "encode_request",
    "negotiate_options",
    "normalise_request_path",
    "parse_packet",
    "unknown_tid_error",
]
