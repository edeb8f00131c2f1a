"""A small blocking TFTP client for tests: RFC 1350 with options and RFC 7440 windows.

It can lose DATA blocks on purpose (`lose`), stop acknowledging after a block (`stop_after`)
to hold a transfer slot, and reports what the server sent, so tests see the server's
retransmissions and errors. Built on the codec of `edgebox.wire.tftp`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgebox.wire.tftp import (
    DATA,
    ERROR,
    OACK,
    RRQ,
    WRQ,
    encode_ack,
    encode_request,
    parse_packet,
)


@dataclass
class Fetched:
    data: bytes = b""
    oack: dict[str, str] = field(default_factory=dict)
    error: ERROR | None = None
    server_tid: tuple[str, int] | None = None
    duplicates: int = 0  # DATA blocks received twice (the server's retransmissions)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def tftp_request(
    server: tuple[str, int],
    name: str,
    options: dict[str, str] | None = None,
    write: bool = False,
    mode: str = "octet",
    timeout: float = 3.0,
) -> tuple[socket.socket, bytes, tuple[str, int]]:
    """Send one RRQ/WRQ from a fresh socket; returns the socket and the first reply."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(timeout)
    pairs = tuple((k, v) for k, v in (options or {}).items())
    request = WRQ(name, mode, pairs) if write else RRQ(name, mode, pairs)
    sock.sendto(encode_request(request), server)
    data, addr = sock.recvfrom(70000)
    return sock, data, addr


def fetch(
    server: tuple[str, int],
    name: str,
    options: dict[str, str] | None = None,
    lose: Callable[[int], bool] | None = None,
    stop_after: int | None = None,
    timeout: float = 3.0,
) -> Fetched:
    """Download `name`. `lose(block)` True drops that DATA the first time it arrives."""
    started = time.monotonic()
    result = Fetched()
    sock, first, addr = tftp_request(server, name, options, timeout=timeout)
    try:
        result.server_tid = addr
        _receive(sock, first, addr, result, lose, stop_after)
    finally:
        sock.close()
    result.seconds = time.monotonic() - started
    return result


def _receive(
    sock: socket.socket,
    first: bytes,
    server: tuple[str, int],
    result: Fetched,
    lose: Callable[[int], bool] | None,
    stop_after: int | None,
) -> None:
    blksize, windowsize = 512, 1
    chunks: list[bytes] = []
    expected = 1  # absolute index of the next block
    since_ack = 0
    lost: set[int] = set()
    packet = parse_packet(first)
    if isinstance(packet, ERROR):
        result.error = packet
        return
    if isinstance(packet, OACK):
        result.oack = dict(packet.options)
        blksize = int(result.oack.get("blksize", 512))
        windowsize = int(result.oack.get("windowsize", 1))
        sock.sendto(encode_ack(0), server)
        data, addr = sock.recvfrom(70000)
        assert addr == server
        packet = parse_packet(data)
    while True:
        if isinstance(packet, ERROR):
            result.error = packet
            return
        assert isinstance(packet, DATA), packet
        index = expected if packet.block == expected % 65536 else None
        if index is None:
            result.duplicates += 1
            since_ack = 0
            sock.sendto(encode_ack((expected - 1) % 65536), server)  # RFC 7440: resync
        elif lose is not None and index not in lost and lose(index):
            lost.add(index)
        else:
            chunks.append(packet.data)
            expected += 1
            since_ack += 1
            final = len(packet.data) < blksize
            if stop_after is not None and index >= stop_after:
                return
            if final or since_ack >= windowsize:
                sock.sendto(encode_ack(index % 65536), server)
                since_ack = 0
            if final:
                result.data = b"".join(chunks)
                return
        try:
            data, addr = sock.recvfrom(70000)
        except TimeoutError:
            sock.sendto(encode_ack((expected - 1) % 65536), server)
            data, addr = sock.recvfrom(70000)
        assert addr == server, f"DATA from {addr}, expected {server}"
        packet = parse_packet(data)
