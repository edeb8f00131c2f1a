"""The UDP sockets of the TFTP server: a request socket per interface, one per transfer.

The request socket is bound to port 69 and pinned to its interface with SO_BINDTODEVICE, so
TFTP answers only on the links the configuration names (several such sockets can share the
port, one per device), and asks for IP_PKTINFO to learn which local address each request was
sent to. A transfer's socket is bound to that address and a port of the kernel's choosing (the
server's TID, RFC 1350 section 4), on the same device: the reply comes from the address the
client talked to even when the interface has several. Both are created inside the interface's
network namespace when one is configured (see netns_sockets.py).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = [
    "PKTINFO_SPACE",
    "TFTP_PORT",
    "TftpEndpoint",
    "open_request_socket",
    "open_transfer_socket",
    "request_destination",
]

TFTP_PORT = 69
REQUEST_BUFFER = 1024 * 1024  # a rack powering on sends its RRQs at once
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux; Python 3.11 does not export it
PKTINFO_SPACE = socket.CMSG_SPACE(12)  # struct in_pktinfo


@dataclass(frozen=True, slots=True)
class TftpEndpoint:
    interface: str  # the device to bind to; "" binds to none (tests on loopback only)
    netns: str = ""
    address: str = "0.0.0.0"  # noqa: S104 (pinned to `interface` unless a test says otherwise)
    port: int = TFTP_PORT


def open_request_socket(endpoint: TftpEndpoint) -> socket.socket:
    """The port-69 socket of one interface (run inside its namespace)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if endpoint.interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, endpoint.interface.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, REQUEST_BUFFER)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind((endpoint.address, endpoint.port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_transfer_socket(interface: str, local_ip: str) -> socket.socket:
    """A transfer's socket: a fresh port (the server's TID) on the address the RRQ reached."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        if interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind((local_ip, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def request_destination(ancdata: list[tuple[int, int, bytes]], default: str) -> str:
    """The address a request was sent to, from IP_PKTINFO's ipi_spec_dst (ip(7))."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntoa(data[4:8])
    return default
