"""DECLINE, RELEASE and INFORM: the client tells the server something (RFC 2131 4.3.3-4.3.5).

DECLINE and RELEASE get no reply; each changes one lease durably, and only a lease that is
this client's (a spoofed RELEASE of someone else's address is ignored). INFORM gets the
subnet's options in an ACK with no address and no lease times, unicast to ciaddr.
"""

from __future__ import annotations

from dataclasses import replace

from edgebox.wire.dhcp.decision import Decision
from edgebox.wire.dhcp.destination import inform_destination
from edgebox.wire.dhcp.leases import ChangeKind, LeaseChange, LeaseState
from edgebox.wire.dhcp.options import REQUESTED_IP, SERVER_ID, MessageType
from edgebox.wire.dhcp.replies import ReplyFields, build_reply
from edgebox.wire.dhcp.served import Request, Served
from edgebox.wire.dhcp.values import format_ipv4 as _ip


def decline(served: Served, req: Request) -> Decision:
    """The client found its address in use (ARP): quarantine it, durably."""
    server_id = req.msg.get(SERVER_ID)
    if served.foreign_server(server_id):
        return Decision(f"DECLINE for server {_ip(server_id or 0)}")
    ip = req.msg.get(REQUESTED_IP)
    if ip is None:
        return Decision("DECLINE without the declined address (option 50)")
    lease = req.leases.get(ip)
    if lease is None or not req.owns(lease):
        return Decision(f"DECLINE of {_ip(ip)}, which is not this client's")
    quarantine = served.config.decline_quarantine
    # ever_bound=False: someone else uses the address; probe it again after the quarantine.
    declined = replace(
        lease, state=LeaseState.DECLINED, expires=req.now + quarantine, ever_bound=False
    )
    change = LeaseChange(ChangeKind.DECLINE, declined)
    reason = f"DECLINE {_ip(ip)}: in use, quarantined for {quarantine:g} s"
    return Decision(reason, change=change, subnet_id=lease.subnet_id)


def release(served: Served, req: Request) -> Decision:
    """The client gives its address back: free it, durably."""
    server_id = req.msg.get(SERVER_ID)
    if served.foreign_server(server_id):
        return Decision(f"RELEASE for server {_ip(server_id or 0)}")
    ip = req.msg.ciaddr
    lease = req.leases.get(ip)
    if lease is None or lease.key != req.key or lease.state is not LeaseState.BOUND:
        return Decision(f"RELEASE of {_ip(ip)}, which is not bound to this client")
    if not lease.active(req.now):
        return Decision(f"RELEASE of {_ip(ip)}, whose lease has expired already")
    released = replace(lease, state=LeaseState.RELEASED, expires=req.now)
    change = LeaseChange(ChangeKind.RELEASE, released)
    return Decision(f"RELEASE {_ip(ip)}", change=change, subnet_id=lease.subnet_id)


def inform(served: Served, req: Request) -> Decision:
    """A client with an address of its own wants the subnet's options (RFC 2131 4.3.5)."""
    ip = req.msg.ciaddr
    if not ip:
        return Decision("INFORM without ciaddr")
    subnet = served.address_subnet(req, ip)
    if subnet is None:
        return Decision(f"INFORM from {_ip(ip)}: not on a subnet served here")
    fields = ReplyFields(
        MessageType.ACK,
        subnet.server_address,
        req.msg.flags,
        ciaddr=ip,
        body=served.options[subnet.id],
    )
    packet = build_reply(req.msg, fields)
    destination = inform_destination(req.msg)
    reason = f"ACK to INFORM from {_ip(ip)}"
    return Decision(reason, packet, destination, subnet_id=subnet.id)
