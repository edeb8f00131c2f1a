"""RFC 2131 4.1, every row of the reply-destination table."""

from __future__ import annotations

import pytest
from dhcp_server_lab import IP

from edgebox.wire.dhcp import FLAG_BROADCAST, DhcpMessage, MessageType
from edgebox.wire.dhcp.destination import (
    BROADCAST_IP,
    Destination,
    DestinationKind,
    inform_destination,
    reply_destination,
    reply_flags,
    source_destination,
)

GIADDR = IP("10.20.0.1")
CIADDR = IP("10.0.0.150")
YIADDR = IP("10.0.0.151")


def request(giaddr: int = 0, ciaddr: int = 0, broadcast: bool = False) -> DhcpMessage:
    return DhcpMessage(
        op=1,
        xid=1,
        giaddr=giaddr,
        ciaddr=ciaddr,
        flags=FLAG_BROADCAST if broadcast else 0,
        chaddr=bytes(6),
    )


@pytest.mark.parametrize(
    ("msg", "reply_type", "expected"),
    [
        # giaddr set: to the relay's server port, whatever else is set.
        (request(GIADDR), MessageType.OFFER, (DestinationKind.RELAY, GIADDR, 67)),
        (request(GIADDR, CIADDR, True), MessageType.ACK, (DestinationKind.RELAY, GIADDR, 67)),
        (request(GIADDR), MessageType.NAK, (DestinationKind.RELAY, GIADDR, 67)),
        # ciaddr set: unicast to the client.
        (request(0, CIADDR), MessageType.ACK, (DestinationKind.CLIENT_ADDRESS, CIADDR, 68)),
        (request(0, CIADDR, True), MessageType.ACK, (DestinationKind.CLIENT_ADDRESS, CIADDR, 68)),
        # Broadcast bit: broadcast.
        (request(broadcast=True), MessageType.OFFER, (DestinationKind.BROADCAST, BROADCAST_IP, 68)),
        # Neither: to chaddr/yiaddr, which the adapter does as a link broadcast.
        (
            request(),
            MessageType.OFFER,
            (DestinationKind.LINK_BROADCAST_OR_UNICAST_TO_CHADDR, YIADDR, 68),
        ),
        # A NAK without giaddr is always broadcast, ciaddr or not.
        (request(0, CIADDR), MessageType.NAK, (DestinationKind.BROADCAST, BROADCAST_IP, 68)),
        (request(), MessageType.NAK, (DestinationKind.BROADCAST, BROADCAST_IP, 68)),
    ],
)
def test_reply_destination(
    msg: DhcpMessage, reply_type: MessageType, expected: tuple[DestinationKind, int, int]
) -> None:
    assert reply_destination(msg, reply_type, YIADDR) == Destination(*expected)


def test_a_relayed_nak_gets_the_broadcast_bit_and_nothing_else_changes_flags() -> None:
    assert reply_flags(request(GIADDR), MessageType.NAK) == FLAG_BROADCAST
    assert reply_flags(request(), MessageType.NAK) == 0
    assert reply_flags(request(GIADDR), MessageType.OFFER) == 0
    assert reply_flags(request(broadcast=True), MessageType.ACK) == FLAG_BROADCAST


def test_inform_goes_to_ciaddr_even_when_relayed() -> None:
    relayed = request(GIADDR, CIADDR)
    assert inform_destination(relayed) == Destination(DestinationKind.CLIENT_ADDRESS, CIADDR, 68)
    assert inform_destination(request(GIADDR)) == Destination(DestinationKind.RELAY, GIADDR, 67)


def test_boot_server_replies_go_to_the_source() -> None:
    assert source_destination(CIADDR, 4011) == Destination(DestinationKind.SOURCE, CIADDR, 4011)
