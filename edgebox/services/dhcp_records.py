"""Conversions between the DHCP core's values and the rest of edgebox (records, sends)."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from edgebox.domain.dhcp import LeaseRecord, LeaseState
from edgebox.storage.dhcp_store import LeaseRow
from edgebox.wire.dhcp import format_ipv4
from edgebox.wire.dhcp.boot import BootChoice, BootKind
from edgebox.wire.dhcp.decision import Decision
from edgebox.wire.dhcp.destination import DestinationKind
from edgebox.wire.dhcp.leases import Lease
from edgebox.wire.dhcp.leases import LeaseState as WireState


class Outgoing(NamedTuple):
    """A datagram to send on the link it belongs to (a tuple: one per reply, built fast)."""

    data: bytes
    ip: str
    port: int


_U32 = struct.Struct("!I")
_BROADCASTS = (DestinationKind.BROADCAST, DestinationKind.LINK_BROADCAST_OR_UNICAST_TO_CHADDR)


def ip_from_text(text: str) -> int:
    # On the packet path: inet_aton is ~10x cheaper than ipaddress.IPv4Address.
    try:
        return int(_U32.unpack(socket.inet_aton(text))[0])
    except OSError:
        return 0


def outgoing(decision: Decision) -> Outgoing | None:
    if decision.packet is None or decision.destination is None:
        return None
    dest = decision.destination
    if dest.kind in _BROADCASTS:
        return Outgoing(decision.packet, "255.255.255.255", dest.port)
    return Outgoing(decision.packet, format_ipv4(dest.ip), dest.port)


_TO_STATE = {
    WireState.BOUND: LeaseState.BOUND,
    WireState.RELEASED: LeaseState.RELEASED,
    WireState.EXPIRED: LeaseState.EXPIRED,
    WireState.DECLINED: LeaseState.DECLINED,
}


_ROW_STATE = {wire: stored.value for wire, stored in _TO_STATE.items()}


def to_row(lease: Lease) -> LeaseRow:
    """A durable lease as the writer stores it (what `to_record` holds, as a plain tuple)."""
    return (
        lease.ip, lease.mac, lease.client_id, lease.subnet_id, _ROW_STATE[lease.state],
        lease.hostname, lease.expires,
    )  # fmt: skip


def to_record(lease: Lease) -> LeaseRecord:
    """A durable lease as stored (OFFERED holds are never stored)."""
    return LeaseRecord(
        lease.ip, lease.mac, lease.client_id, lease.subnet_id, _TO_STATE[lease.state],
        lease.hostname, lease.expires,
    )  # fmt: skip


def to_wire(record: LeaseRecord) -> Lease:
    return Lease(
        ip=record.ip, mac=record.mac, client_id=record.client_id, subnet_id=record.subnet,
        state=WireState(record.state.value), expires=record.expires, hostname=record.hostname,
        ever_bound=record.state is not LeaseState.DECLINED,
    )  # fmt: skip


def arch_name(choice: BootChoice) -> str:
    """The MAAS-style architecture of a machine from its boot request."""
    return "arm64/generic" if choice.kind is BootKind.ARM64 else "amd64/generic"
