"""Where a reply goes: RFC 2131 section 4.1 as a table, plus the PXE boot-server port.

`reply_destination` walks the RFC's rules in the RFC's order; each `DestinationKind`
member carries the sentence it implements. The adapter maps a kind to a send:

=====================================  ====================================================
kind                                   adapter
=====================================  ====================================================
RELAY                                  unicast to ``ip``:67
CLIENT_ADDRESS                         unicast to ``ip``:68
BROADCAST                              255.255.255.255:68 on the receiving link
LINK_BROADCAST_OR_UNICAST_TO_CHADDR    255.255.255.255:68 on the receiving link (see below)
SOURCE                                 unicast to ``ip``:``port`` (where the request came from)
=====================================  ====================================================
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from edgebox.wire.dhcp.message import FLAG_BROADCAST, DhcpMessage
from edgebox.wire.dhcp.options import MessageType

SERVER_PORT = 67
CLIENT_PORT = 68
PXE_BOOT_SERVER_PORT = 4011
BROADCAST_IP = 0xFFFFFFFF


class DestinationKind(enum.Enum):
    # "If the 'giaddr' field in a DHCP message from a client is non-zero, the server sends
    # any return messages to the 'DHCP server' port on the BOOTP relay agent whose address
    # appears in 'giaddr'."
    RELAY = "relay"
    # "If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the server
    # unicasts DHCPOFFER and DHCPACK messages to the address in 'ciaddr'."
    # (And RFC 2131 4.3.5: the DHCPACK to a DHCPINFORM goes to 'ciaddr'.)
    CLIENT_ADDRESS = "client address"
    # "If 'giaddr' is zero and 'ciaddr' is zero, and the broadcast bit is set, then the
    # server broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff."
    # Also: "In all cases, when 'giaddr' is zero, the server broadcasts any DHCPNAK
    # messages to 0xffffffff."
    BROADCAST = "broadcast"
    # "If the broadcast bit is not set and 'giaddr' is zero and 'ciaddr' is zero, then the
    # server unicasts DHCPOFFER and DHCPACK messages to the client's hardware address and
    # 'yiaddr' address." That needs an ARP entry injected for yiaddr (or a raw frame to
    # chaddr), which a plain UDP socket cannot do, so the adapter broadcasts on the link:
    # the RFC allows it ("the server MAY ... broadcast"), and every client accepts it.
    LINK_BROADCAST_OR_UNICAST_TO_CHADDR = "link broadcast or unicast to chaddr"
    # PXE boot server (port 4011) replies go back to the address and port the request came
    # from (PXE 2.1 specification, "Boot Server Discovery").
    SOURCE = "source"


class Destination(NamedTuple):  # not a dataclass: one per reply, and a tuple is built faster
    kind: DestinationKind
    ip: int  # for LINK_BROADCAST_OR_UNICAST_TO_CHADDR: yiaddr (the frame goes to chaddr)
    port: int


def reply_destination(request: DhcpMessage, reply_type: MessageType, yiaddr: int) -> Destination:
    """Where the reply of ``reply_type`` to ``request`` (received on port 67) goes."""
    if request.giaddr:
        return Destination(DestinationKind.RELAY, request.giaddr, SERVER_PORT)
    if reply_type is MessageType.NAK:
        return Destination(DestinationKind.BROADCAST, BROADCAST_IP, CLIENT_PORT)
    if request.ciaddr:
        return Destination(DestinationKind.CLIENT_ADDRESS, request.ciaddr, CLIENT_PORT)
    if request.flags & FLAG_BROADCAST:
        return Destination(DestinationKind.BROADCAST, BROADCAST_IP, CLIENT_PORT)
    return Destination(DestinationKind.LINK_BROADCAST_OR_UNICAST_TO_CHADDR, yiaddr, CLIENT_PORT)


def inform_destination(request: DhcpMessage) -> Destination:
    """RFC 2131 4.3.5: "The server SHOULD ... unicast the DHCPACK to ... 'ciaddr'"."""
    if request.ciaddr:
        return Destination(DestinationKind.CLIENT_ADDRESS, request.ciaddr, CLIENT_PORT)
    return reply_destination(request, MessageType.ACK, 0)


def source_destination(ip: int, port: int) -> Destination:
    """A reply to a request on the PXE boot-server port goes back where it came from."""
    return Destination(DestinationKind.SOURCE, ip, port)


def reply_flags(request: DhcpMessage, reply_type: MessageType) -> int:
    """The reply's 'flags': the client's, plus the broadcast bit on a relayed NAK.

    RFC 2131 4.3.2: "If 'giaddr' is set in the DHCPREQUEST message, the client is on a
    different subnet. The server MUST set the broadcast bit in the DHCPNAK, so that the
    relay agent will broadcast the DHCPNAK to the client, because the client may not have
    a correct network address or subnet mask, and the client may not be answering ARP
    requests."
    """
    if reply_type is MessageType.NAK and request.giaddr:
        return request.flags | FLAG_BROADCAST
    return request.flags
