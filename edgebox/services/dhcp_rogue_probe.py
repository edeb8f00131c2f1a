"""Finding other DHCP servers on served links (a DHCP server on the wrong link breaks it).

Every interval the listener broadcasts a DISCOVER built here, from a locally administered
chaddr that our own server ignores, and hands back every reply it hears for a couple of
seconds. An OFFER for our probe's xid whose server identifier is not ours is another server:
it is recorded (first sighting: an event and an API-visible warning).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from edgebox.domain.dhcp import ForeignServer
from edgebox.services.clock import Clock
from edgebox.services.dhcp_records import Outgoing
from edgebox.storage.dhcp_store import DhcpStore
from edgebox.wire.dhcp import (
    BOOTREPLY,
    FLAG_BROADCAST,
    MESSAGE_TYPE,
    PARAMETER_REQUEST_LIST,
    SERVER_ID,
    DhcpMessage,
    DhcpParseError,
    MessageType,
    encode_message,
    format_ipv4,
    parse_message,
)

log = logging.getLogger(__name__)

# chaddr prefix of our own probes (locally administered): our server does not answer them.
PROBE_MAC_PREFIX = b"\x02\xeb\x0b"


@dataclass(frozen=True, slots=True)
class _Probe:
    xid: int
    mac: bytes
    our_address: str


class RogueServerProbe:
    def __init__(self, store: DhcpStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._probes: dict[str, _Probe] = {}

    def make_probe(self, link: str, our_address: str) -> Outgoing:
        xid = secrets.randbits(32)
        mac = PROBE_MAC_PREFIX + secrets.token_bytes(3)
        self._probes[link] = _Probe(xid, mac, our_address)
        options = dict(
            [MESSAGE_TYPE.item(MessageType.DISCOVER), PARAMETER_REQUEST_LIST.item((1, 3, 6, 54))]
        )
        msg = DhcpMessage(op=1, xid=xid, flags=FLAG_BROADCAST, chaddr=mac, options=options)
        return Outgoing(encode_message(msg), "255.255.255.255", 67)

    async def offer_seen(self, link: str, data: bytes, source: tuple[str, int]) -> None:
        probe = self._probes.get(link)
        try:
            msg = parse_message(data)
            server = msg.get(SERVER_ID)
            kind = msg.message_type
        except DhcpParseError:
            return
        if probe is None or msg.op != BOOTREPLY or msg.xid != probe.xid:
            return
        server_ip = format_ipv4(server) if server else source[0]
        if server_ip == probe.our_address or kind is not MessageType.OFFER:
            return
        now = self._clock.now()
        found = ForeignServer(server_ip, link, "", format_ipv4(msg.yiaddr), now, now)
        if await self._store.saw_foreign_server(found):
            log.warning("another DHCP server answers link=%s server=%s", link, server_ip)
