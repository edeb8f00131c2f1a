"""An interface's IPv4 address and MAC, read with ioctl on a socket of its namespace."""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCGIFHWADDR = 0x8927


class InterfaceError(OSError):
    """The interface does not exist or has no IPv4 address."""


def _ifreq(name: str) -> bytes:
    return struct.pack("256s", name.encode()[:15])


def interface_ipv4(name: str) -> tuple[str, int]:
    """The interface's primary IPv4 address and prefix length (call it in its namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            addr = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, _ifreq(name))
            mask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, _ifreq(name))
        except OSError as exc:
            raise InterfaceError(
                exc.errno, f"interface {name}: no IPv4 address ({exc.strerror})"
            ) from None
    address = socket.inet_ntoa(addr[20:24])
    prefix = bin(struct.unpack("!I", mask[20:24])[0]).count("1")
    return address, prefix


def interface_mac(name: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            data = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, _ifreq(name))
        except OSError as exc:
            raise InterfaceError(exc.errno, f"interface {name}: {exc.strerror}") from None
    return data[18:24]
