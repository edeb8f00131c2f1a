"""proxyDHCP and the PXE boot-server port: boot options only, never an address.

Beside an existing DHCP server (a link in ``proxy`` mode) edgebox answers only clients
that announce themselves as network-booting (option 60 ``PXEClient``/``HTTPClient``), with
an OFFER on port 67 that has no yiaddr, the server id, the vendor class echoed, for PXE
option 43 sub-option 6 = 8 ("use the boot file in this offer, skip boot server
discovery", PXE 2.1 specification) and the boot file. The client takes its address from
the other server and its boot file from us.

UEFI PXE (EDK2 PxeBcDxe), which calls such an offer "ProxyBinl", then asks for the boot file
again with a DHCPREQUEST to port 4011; so does iPXE. That REQUEST is answered with an ACK
carrying the boot file, sent back to where it came from. Port 4011 is answered the same
way on links in ``server`` mode. No lease is ever recorded here.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgebox.wire.dhcp.boot import BootChoice, decide_boot
from edgebox.wire.dhcp.decision import Decision, ReceivedOn
from edgebox.wire.dhcp.destination import reply_destination, reply_flags, source_destination
from edgebox.wire.dhcp.message import DhcpMessage
from edgebox.wire.dhcp.options import MessageType
from edgebox.wire.dhcp.replies import ReplyFields, boot_fields, build_reply
from edgebox.wire.dhcp.server_config import SubnetConfig


def proxy_offer(msg: DhcpMessage, subnets: Sequence[SubnetConfig]) -> Decision:
    """A DISCOVER on port 67 of a proxy link."""
    if msg.message_type is not MessageType.DISCOVER:
        return Decision("proxyDHCP answers only DISCOVER on port 67")
    return _boot_reply(msg, subnets, MessageType.OFFER, None)


def boot_server_ack(
    msg: DhcpMessage, subnets: Sequence[SubnetConfig], received: ReceivedOn
) -> Decision:
    """A REQUEST (or INFORM) on port 4011."""
    if msg.message_type not in (MessageType.REQUEST, MessageType.INFORM):
        return Decision(f"port 4011 answers REQUEST only, not {_name(msg)}")
    return _boot_reply(msg, subnets, MessageType.ACK, received)


def _boot_reply(
    msg: DhcpMessage,
    subnets: Sequence[SubnetConfig],
    reply_type: MessageType,
    received: ReceivedOn | None,
) -> Decision:
    subnet = next((s for s in subnets if s.boot is not None), None)
    if subnet is None or subnet.boot is None:
        return Decision("no subnet with a boot configuration for this proxyDHCP client")
    choice = decide_boot(msg, subnet.boot)
    if not isinstance(choice, BootChoice):
        return Decision(f"proxyDHCP: {choice.reason}", subnet_id=subnet.id)
    if choice.vendor_class is None:
        # The PXE specification has proxies answer PXEClient only; HTTPClient works too.
        return Decision("proxyDHCP answers PXEClient/HTTPClient clients only", subnet_id=subnet.id)
    boot = boot_fields(choice, subnet.boot, msg, proxy=True)
    fields = ReplyFields(
        reply_type,
        subnet.server_address,
        reply_flags(msg, reply_type),
        ciaddr=msg.ciaddr if reply_type is MessageType.ACK else 0,
        siaddr=boot.siaddr,
        file=boot.file,
        body=boot.options,
    )
    packet = build_reply(msg, fields)
    if received is None or not received.source_ip:
        destination = reply_destination(msg, reply_type, 0)
    else:
        destination = source_destination(received.source_ip, received.source_port)
    return Decision(
        f"proxy {reply_type.name} {choice.kind} {choice.file}",
        packet,
        destination,
        boot=choice,
        subnet_id=subnet.id,
    )


def _name(msg: DhcpMessage) -> str:
    kind = msg.message_type
    return kind.name if kind is not None else "BOOTP"
