"""The UDP sockets of the DHCP server: one per served interface and port.

Each socket is bound to 0.0.0.0:67 (or 4011 for proxyDHCP) and pinned to its interface with
SO_BINDTODEVICE, so a reply broadcast to 255.255.255.255 leaves on that link only, and a
request is known to have come in on it. Several such sockets can share the port because each
is bound to a different device. A socket is created inside the interface's network namespace
when one is configured (see netns.py).
"""

from __future__ import annotations

import socket

# Room for ~400 requests (the kernel doubles it; a DHCP datagram takes 1-1.3 KiB of it):
# a power-on burst of hundreds of PXE clients fits, and under overload a request waits here
# ~10-20 ms at most. A deeper queue only answers requests that waited longer, after their
# clients gave up or sent again, while the kernel drops the fresh ones, and the late replies
# then bunch up at the relay: beyond saturation, bench/dhcp.py measured OFFERs 40-130 ms late
# with 1 MiB and 8 MiB here and 11-19 ms with ~200 KiB (Kea's default), with more exchanges
# completed. A quarter of a MiB keeps some room for the server's own pauses.
RECEIVE_BUFFER = 256 * 1024


def open_dhcp_socket(interface: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind(("0.0.0.0", port))  # noqa: S104 (pinned to one device above)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
