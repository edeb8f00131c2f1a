"""Option 121, classless static routes (RFC 3442).

Each route is a prefix width (0..32), only the significant octets of the destination
(``ceil(width / 8)`` of them), then the 4-byte router. A client that gets 121 ignores
option 3 (routers), so a server sending 121 must include the default route in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgebox.wire.dhcp.values import format_ipv4


@dataclass(frozen=True, slots=True)
class ClasslessRoute:
    """``destination/prefix_len via router``; addresses are ints, as elsewhere in the codec."""

    destination: int
    prefix_len: int
    router: int

    def __str__(self) -> str:
        return f"{format_ipv4(self.destination)}/{self.prefix_len} via {format_ipv4(self.router)}"


def _mask(prefix_len: int) -> int:
    return (0xFFFFFFFF << (32 - prefix_len)) & 0xFFFFFFFF


def decode_classless_routes(raw: bytes) -> tuple[ClasslessRoute, ...]:
    if not raw:
        raise ValueError("length 0, at least 5 bytes are required")
    routes: list[ClasslessRoute] = []
    pos, end = 0, len(raw)
    while pos < end:
        width = raw[pos]
        if width > 32:
            raise ValueError(f"route at offset {pos}: prefix width {width} is above 32")
        octets = (width + 7) // 8
        stop = pos + 1 + octets + 4
        if stop > end:
            raise ValueError(f"route at offset {pos} runs past the end (len {end})")
        dest = int.from_bytes(raw[pos + 1 : pos + 1 + octets].ljust(4, b"\0"), "big")
        if dest & ~_mask(width) & 0xFFFFFFFF:
            raise ValueError(
                f"route at offset {pos}: {format_ipv4(dest)}/{width} has host bits set"
            )
        router = int.from_bytes(raw[stop - 4 : stop], "big")
        routes.append(ClasslessRoute(dest, width, router))
        pos = stop
    return tuple(routes)


def encode_classless_routes(routes: Iterable[ClasslessRoute]) -> bytes:
    out = bytearray()
    for route in routes:
        width = route.prefix_len
        if not 0 <= width <= 32:
            raise ValueError(f"prefix width {width} is not 0..32")
        if route.destination & ~_mask(width) & 0xFFFFFFFF:
            raise ValueError(f"{format_ipv4(route.destination)}/{width} has host bits set")
        out.append(width)
        out += route.destination.to_bytes(4, "big")[: (width + 7) // 8]
        out += route.router.to_bytes(4, "big")
    if not out:
        raise ValueError("a route list needs at least one route")
    return bytes(out)


def format_classless_routes(routes: tuple[ClasslessRoute, ...]) -> str:
    return ", ".join(map(str, routes))
