"""What the server handlers share: the request at hand, and lookups derived from the config.

Which subnet a request belongs to: a relayed request (giaddr set) to the subnet holding
giaddr, whatever link it came in on; one about an address the client already has (ciaddr:
renewing, rebinding, release, inform, port 4011) to the subnet holding ciaddr on the link,
or on no link at all (a routed unicast from a subnet behind a relay); anything else to the
subnets of the link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from edgebox.wire.dhcp.decision import ReceivedOn
from edgebox.wire.dhcp.errors import DhcpParseError
from edgebox.wire.dhcp.leases import ClientKey, Lease, LeaseState, LeaseTable
from edgebox.wire.dhcp.message import DhcpMessage
from edgebox.wire.dhcp.options import HOSTNAME, LEASE_TIME, OptionField
from edgebox.wire.dhcp.replies import lease_options, subnet_options
from edgebox.wire.dhcp.server_config import LinkConfig, ServerConfig, SubnetConfig

CLIENT_ID_OPTION = 61
CLIENT_STATES = frozenset((LeaseState.OFFERED, LeaseState.BOUND))


@dataclass(slots=True)
class Request:
    """One request being handled, with what every handler needs about it."""

    msg: DhcpMessage
    received: ReceivedOn
    link: LinkConfig
    leases: LeaseTable
    now: float
    mac: str
    key: ClientKey

    @property
    def client_id(self) -> bytes | None:
        return self.msg.options.get(CLIENT_ID_OPTION)

    def owns(self, lease: Lease | None) -> bool:
        """``lease`` is this client's offer or binding (expired or not)."""
        return lease is not None and lease.key == self.key and lease.state in CLIENT_STATES


class Served:
    """The configuration, indexed for the questions handlers ask on every packet."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.links = {link.name: link for link in config.links}
        by_id = {subnet.id: subnet for subnet in config.subnets}
        self._on_link = {
            link.name: tuple(by_id[i] for i in link.subnet_ids) for link in config.links
        }
        placed = {i for link in config.links for i in link.subnet_ids}
        self._remote = tuple(s for s in config.subnets if s.id not in placed)
        self._remote_ids = frozenset(s.id for s in self._remote)
        self.server_ids = frozenset(
            [s.server_address for s in config.subnets] + [link.address for link in config.links]
        )
        # Encoded once: mask, router, DNS ... are the same in every reply on a subnet.
        self.options = {subnet.id: subnet_options(subnet) for subnet in config.subnets}

    def client_subnets(self, req: Request) -> tuple[SubnetConfig, ...]:
        """Where a client with no address yet is: giaddr's subnet, else its link's."""
        if req.msg.giaddr:
            subnet = containing(req.msg.giaddr, self.config.subnets)
            return (subnet,) if subnet is not None else ()
        return self._on_link[req.link.name]

    def address_subnet(self, req: Request, ip: int) -> SubnetConfig | None:
        """The subnet of an address the client says it has, if the client can be there."""
        if req.msg.giaddr:
            subnet = containing(req.msg.giaddr, self.config.subnets)
            return subnet if subnet is not None and subnet.contains(ip) else None
        return containing(ip, self._on_link[req.link.name]) or containing(ip, self._remote)

    def is_remote(self, subnet: SubnetConfig) -> bool:
        """The subnet is on no served link: its clients come through relays."""
        return subnet.id in self._remote_ids

    def foreign_server(self, server_id: int | None) -> bool:
        """The message names a server id (54) that is not one of ours."""
        return server_id is not None and server_id not in self.server_ids

    def lease_time(self, msg: DhcpMessage, subnet: SubnetConfig) -> int:
        """The subnet's lease time; less if the client asks for less (option 51)."""
        asked = get_or_none(msg, LEASE_TIME)
        if asked is None:
            return subnet.lease_time
        return max(self.config.min_lease, min(asked, subnet.lease_time))


def containing(ip: int, subnets: Sequence[SubnetConfig]) -> SubnetConfig | None:
    for subnet in subnets:
        if (ip & subnet.mask) == subnet.network:
            return subnet
    return None


def hostname(msg: DhcpMessage, previous: Lease | None) -> str:
    """Option 12 if sent and readable, else what the client's lease had."""
    try:
        name = msg.get(HOSTNAME)
    except DhcpParseError:
        name = None  # a garbled host name is no reason to refuse an address
    return name or (previous.hostname if previous is not None else "")


def get_or_none(msg: DhcpMessage, option: OptionField[int]) -> int | None:
    """An optional option whose malformed value is ignored rather than fatal."""
    try:
        return msg.get(option)
    except DhcpParseError:
        return None


# Lease times repeat (one per subnet, or a few a client asked for): encode each once.
cached_lease_options = lru_cache(maxsize=64)(lease_options)
