"""ARP probes (RFC 5227 §2.1.1): is an address already in use on a link?

A probe is an ARP request for the address with sender IP 0.0.0.0, broadcast on the link; any
ARP packet from that address (a reply, or a probe/request of its own) means someone holds it.
Built with struct on an AF_PACKET socket rather than scapy: scapy costs ~1 s and ~50 MiB to
import, which the daemon must not pay for a 42-byte frame; scapy stays in the tests.
"""

from __future__ import annotations

import asyncio
import socket
import struct

ETH_P_ARP = 0x0806
ARP_REQUEST = 1
BROADCAST = b"\xff" * 6


def probe_frame(our_mac: bytes, target_ip: int) -> bytes:
    eth = BROADCAST + our_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,  # Ethernet
        0x0800,  # IPv4
        6,
        4,
        ARP_REQUEST,
        our_mac,
        b"\0\0\0\0",  # sender IP 0.0.0.0: a probe, it claims nothing (RFC 5227)
        b"\0" * 6,
        struct.pack("!I", target_ip),
    )
    return eth + arp


def sender_of(frame: bytes) -> tuple[int, bytes] | None:
    """(sender IP, sender MAC) of an ARP frame, or None if it is not one."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    sender_mac = frame[22:28]
    (sender_ip,) = struct.unpack("!I", frame[28:32])
    return sender_ip, sender_mac


def open_arp_socket(interface: str) -> socket.socket:
    """An AF_PACKET socket for ARP on `interface` (create it in the interface's namespace)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((interface, ETH_P_ARP))
    sock.setblocking(False)
    return sock


class ArpProber:
    """Probes on one link, many at a time over one socket and one reader."""

    def __init__(self, sock: socket.socket, our_mac: bytes) -> None:
        self._sock = sock
        self._mac = our_mac
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._reading = False

    async def holder(self, ip: int, wait: float) -> bytes | None:
        """Probe `ip`; the MAC of whoever holds it, or None if nobody answers in `wait` s."""
        loop = asyncio.get_running_loop()
        future = self._pending.get(ip)
        if future is None:
            future = self._pending[ip] = loop.create_future()
            self._start_reading()
            try:
                self._sock.send(probe_frame(self._mac, ip))
            except OSError:
                self._pending.pop(ip, None)
                raise
        try:
            async with asyncio.timeout(wait):
                return await asyncio.shield(future)
        except TimeoutError:
            return None
        finally:
            if self._pending.get(ip) is future:
                del self._pending[ip]
            if not self._pending:
                self._stop_reading()

    def _start_reading(self) -> None:
        if not self._reading:
            asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._reading = False

    def _readable(self) -> None:
        while True:
            try:
                frame = self._sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            found = sender_of(frame)
            if found is None or found[1] == self._mac:
                continue
            future = self._pending.get(found[0])
            if future is not None and not future.done():
                future.set_result(found[1])

    def close(self) -> None:
        self._stop_reading()
        self._sock.close()
