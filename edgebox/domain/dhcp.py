"""DHCP records as the rest of edgebox sees them: leases, foreign servers, subnets."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LeaseState(enum.StrEnum):
    BOUND = "bound"
    RELEASED = "released"
    EXPIRED = "expired"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A lease as stored. `ip` is the IPv4 address as an integer (host order)."""

    ip: int
    mac: str
    client_id: bytes | None
    subnet: str
    state: LeaseState
    hostname: str
    expires: float


@dataclass(frozen=True, slots=True)
class ForeignServer:
    """Another DHCP server answering on a link that edgebox serves."""

    server_ip: str
    interface: str
    server_mac: str
    offered_ip: str
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class StoredSubnet:
    id: int
    cidr: str
    definition: str  # JSON of the subnet's settings
    created_at: float
    updated_at: float
