"""What the DHCP server core serves: links, subnets, address ranges and boot files.

Plain frozen data, checked when built so the server never meets a contradiction at packet
time. IPv4 addresses are ``int`` in host order, as in the codec (`parse_ipv4` makes them).
Reservations are not configuration: they come from the inventory through `LeaseTable`.

A `LinkConfig` is one served interface and the subnets directly on it. A subnet on no link
is reached through relay agents (``giaddr``). A subnet's ``id`` is the name leases carry
(the adapter uses the CIDR text, which is what the database stores).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from edgebox.wire.dhcp.values import format_ipv4

LinkMode = Literal["server", "proxy"]

_ALL_ONES = 0xFFFFFFFF
_FILE_FIELD = 128  # BOOTP 'file' field (RFC 951)


def prefix_mask(prefix: int) -> int:
    """``24`` -> ``0xFFFFFF00``."""
    if not 0 <= prefix <= 32:
        raise ValueError(f"prefix length {prefix} is not 0..32")
    return (_ALL_ONES << (32 - prefix)) & _ALL_ONES


def _check_address(value: int, what: str) -> None:
    if not 0 <= value <= _ALL_ONES:
        raise ValueError(f"{what} {value!r} is not an IPv4 address (0 .. 2**32-1)")


@dataclass(frozen=True, slots=True)
class AddressRange:
    """``start`` .. ``end``, both included."""

    start: int
    end: int

    def __post_init__(self) -> None:
        _check_address(self.start, "range start")
        _check_address(self.end, "range end")
        if self.end < self.start:
            raise ValueError(f"range end {format_ipv4(self.end)} is before its start {self}")

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, int) and self.start <= ip <= self.end

    def __len__(self) -> int:
        return self.end - self.start + 1

    def __str__(self) -> str:
        return f"{format_ipv4(self.start)}-{format_ipv4(self.end)}"


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """``network/prefix via gateway``, sent in option 121."""

    network: int
    prefix: int
    gateway: int

    def __post_init__(self) -> None:
        _check_address(self.network, "route network")
        _check_address(self.gateway, "route gateway")
        if self.network & ~prefix_mask(self.prefix) & _ALL_ONES:
            raise ValueError(f"route {format_ipv4(self.network)}/{self.prefix} has host bits set")


@dataclass(frozen=True, slots=True, kw_only=True)
class BootFiles:
    """The loaders each kind of firmware gets, and where they are served from.

    TFTP names are paths under the TFTP root. HTTP loaders are ``{http_base}/loaders/{name}``.
    ``script_url`` is what a client that already runs iPXE gets; ``{mac}`` in it becomes the
    client's MAC (``aa:bb:cc:dd:ee:ff``).
    """

    tftp_server: int  # siaddr and option 66
    http_base: str  # e.g. http://10.0.0.1:5248
    script_url: str  # e.g. http://10.0.0.1:5248/boot/ipxe?mac={mac}
    bios: str = "undionly.kpxe"
    uefi_x64: str = "snponly.efi"  # ipxe.efi for NICs whose UEFI SNP driver misbehaves
    uefi_http: str = "ipxe.efi"
    arm64: str = "ipxe-arm64.efi"
    arm64_http: str = "ipxe-arm64.efi"

    def __post_init__(self) -> None:
        _check_address(self.tftp_server, "tftp_server")
        for name in ("http_base", "script_url"):
            url: str = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} {url!r} must be an http:// or https:// URL")
        for name in ("bios", "uefi_x64", "uefi_http", "arm64", "arm64_http"):
            file: str = getattr(self, name)
            if not file or not file.isascii() or len(file) >= _FILE_FIELD or "\0" in file:
                raise ValueError(f"boot file {name}={file!r} must be 1..127 ASCII characters")

    def loader_url(self, name: str) -> str:
        return f"{self.http_base.rstrip('/')}/loaders/{name}"

    def script_for(self, mac: str) -> str:
        return self.script_url.replace("{mac}", mac)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubnetConfig:
    """One IPv4 subnet: its address pool and the options its clients get."""

    id: str
    network: int
    prefix: int
    ranges: tuple[AddressRange, ...] = ()
    router: int | None = None
    dns: tuple[int, ...] = ()
    ntp: tuple[int, ...] = ()
    domain_name: str = ""
    domain_search: tuple[str, ...] = ()
    mtu: int | None = None
    lease_time: int = 3600
    routes: tuple[StaticRoute, ...] = ()
    boot: BootFiles | None = None
    server_address: int  # our address as this subnet's clients reach it: the server identifier
    mask: int = field(init=False, repr=False, compare=False)
    broadcast: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mask = prefix_mask(self.prefix)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "broadcast", self.network | (~mask & _ALL_ONES))
        if self.network & ~mask & _ALL_ONES:
            raise ValueError(f"subnet {self.id}: {self.cidr} has host bits set")
        _check_address(self.server_address, "server_address")
        if self.lease_time < 1:
            raise ValueError(f"subnet {self.id}: lease_time {self.lease_time} must be positive")
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            raise ValueError(f"subnet {self.id}: MTU {self.mtu} is not 68..65535 (RFC 2132 5.1)")
        self._check_ranges()
        for name, addr in (("router", self.router), ("server_address", self.server_address)):
            if addr is not None and self.in_ranges(addr):
                raise ValueError(f"subnet {self.id}: {name} {format_ipv4(addr)} is in a range")

    def _check_ranges(self) -> None:
        spans = sorted(self.ranges, key=lambda r: r.start)
        for rng in spans:
            if not (self.contains(rng.start) and self.contains(rng.end)):
                raise ValueError(f"subnet {self.id}: range {rng} is not inside {self.cidr}")
            if self.prefix < 31 and (rng.start == self.network or rng.end == self.broadcast):
                raise ValueError(
                    f"subnet {self.id}: range {rng} includes the network or broadcast address"
                )
        for low, high in itertools.pairwise(spans):
            if high.start <= low.end:
                raise ValueError(f"subnet {self.id}: ranges {low} and {high} overlap")

    @property
    def cidr(self) -> str:
        return f"{format_ipv4(self.network)}/{self.prefix}"

    def contains(self, ip: int) -> bool:
        return (ip & self.mask) == self.network

    def in_ranges(self, ip: int) -> bool:
        # A plain loop: on the packet path a generator in any() costs twice as much.
        for rng in self.ranges:  # noqa: SIM110
            if rng.start <= ip <= rng.end:
                return True
        return False


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """One served interface. ``proxy``: boot options only, beside another DHCP server."""

    name: str
    mode: LinkMode
    address: int  # our address on the link
    subnet_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("server", "proxy"):
            raise ValueError(f"link {self.name}: mode {self.mode!r} is not 'server' or 'proxy'")
        _check_address(self.address, "link address")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything the server core serves, checked for contradictions when built."""

    links: tuple[LinkConfig, ...]
    subnets: tuple[SubnetConfig, ...]
    offer_hold: float = 30.0  # seconds an OFFER keeps its address for the client
    decline_quarantine: float = 600.0  # seconds a DECLINEd address is not offered
    min_lease: int = 60  # a client asking (option 51) for less gets this much

    def __post_init__(self) -> None:
        _unique((link.name for link in self.links), "link")
        _unique((subnet.id for subnet in self.subnets), "subnet id")
        known = {subnet.id: subnet for subnet in self.subnets}
        for subnet in self.subnets:
            if subnet.lease_time < self.min_lease:
                raise ValueError(
                    f"subnet {subnet.id}: lease_time {subnet.lease_time} is below "
                    f"min_lease {self.min_lease}"
                )
        placed: dict[str, str] = {}
        for link in self.links:
            for subnet_id in link.subnet_ids:
                if subnet_id not in known:
                    raise ValueError(f"link {link.name}: unknown subnet {subnet_id!r}")
                if subnet_id in placed:
                    raise ValueError(
                        f"subnet {subnet_id} is on links {placed[subnet_id]} and {link.name}"
                    )
                placed[subnet_id] = link.name
                if known[subnet_id].in_ranges(link.address):
                    raise ValueError(
                        f"link {link.name}: its address {format_ipv4(link.address)} is in a "
                        f"range of subnet {subnet_id}"
                    )
        ordered = sorted(self.subnets, key=lambda s: s.network)
        for low, high in itertools.pairwise(ordered):
            if high.network <= low.broadcast:
                raise ValueError(f"subnets {low.id} and {high.id} overlap")
        if self.offer_hold <= 0 or self.decline_quarantine < 0:
            raise ValueError("offer_hold must be positive and decline_quarantine not negative")


def _unique(names: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is listed twice")
        seen.add(name)
