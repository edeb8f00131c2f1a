"""The DHCPv4 server core: one request in, one `Decision` out (RFC 2131 section 4.3).

`DhcpServer.handle(msg, received, leases, now)` is synchronous and pure: it reads the
`LeaseTable` (it never changes it) and returns a `Decision` with the reply, where to send
it, the `LeaseChange` to apply, the boot choice and whether to ARP-probe first. The
adapter applies, commits, probes and sends (`Decision` says in which order).

Which subnet a request belongs to is decided in `served.py`.

Per message type (RFC 2131 4.3):
- DISCOVER -> OFFER of the address `LeaseTable.choose_address` picks, held for offer_hold.
- REQUEST, told apart by its fields (4.3.2): SELECTING (server id) -> ACK/NAK, or silence
  and the offer withdrawn if the client chose another server; INIT-REBOOT (option 50, no
  ciaddr) -> ACK, NAK (wrong network, address taken) or silence (client unknown);
  RENEWING/REBINDING (ciaddr) -> ACK extending the lease, or NAK. Renewing and rebinding
  differ only in being unicast or broadcast, which the adapter does not report; both are
  handled alike.
- DECLINE -> the address is quarantined (durable), no reply. RELEASE -> freed (durable).
- INFORM -> ACK with the subnet's options, no address or lease time (4.3.5).
- A plain BOOTP request (no option 53) is ignored: network-boot firmware always speaks
  DHCP, and serving BOOTP means permanent leases (RFC 1534) that nothing ever releases.
On a ``proxy`` link only network-booting clients are answered (`proxy.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from edgebox.wire.dhcp.boot import BootChoice, NoBoot, decide_boot
from edgebox.wire.dhcp.decision import Decision, ReceivedOn
from edgebox.wire.dhcp.destination import PXE_BOOT_SERVER_PORT, reply_destination, reply_flags
from edgebox.wire.dhcp.errors import DhcpParseError
from edgebox.wire.dhcp.leases import (
    ChangeKind,
    Lease,
    LeaseChange,
    LeaseState,
    LeaseTable,
    client_key,
)
from edgebox.wire.dhcp.message import BOOTREQUEST, HTYPE_ETHERNET, DhcpMessage
from edgebox.wire.dhcp.notices import decline, inform, release
from edgebox.wire.dhcp.options import REQUESTED_IP, SERVER_ID, MessageType
from edgebox.wire.dhcp.proxy import boot_server_ack, proxy_offer
from edgebox.wire.dhcp.replies import ReplyFields, boot_fields, build_reply
from edgebox.wire.dhcp.reply_template import ReplyTemplates
from edgebox.wire.dhcp.served import (
    CLIENT_ID_OPTION,
    Request,
    Served,
    cached_lease_options,
    containing,
    get_or_none,
    hostname,
)
from edgebox.wire.dhcp.server_config import ServerConfig, SubnetConfig
from edgebox.wire.dhcp.values import format_ipv4 as _ip

__all__ = ["Decision", "DhcpServer", "ReceivedOn"]


class DhcpServer:
    """Decides the reply to each DHCP request. Holds configuration only (and reply templates
    derived from it), no state of clients."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._served = served = Served(config)
        self._templates = ReplyTemplates()  # memoised option bytes: no state of clients
        self._handlers: dict[MessageType, Callable[[Request], Decision]] = {
            MessageType.DISCOVER: self._discover,
            MessageType.REQUEST: self._request,
            MessageType.DECLINE: lambda req: decline(served, req),
            MessageType.RELEASE: lambda req: release(served, req),
            MessageType.INFORM: lambda req: inform(served, req),
        }

    def handle(
        self, msg: DhcpMessage, received: ReceivedOn, leases: LeaseTable, now: float
    ) -> Decision:
        """The decision for ``msg``; a drop is a `Decision` whose ``reply`` is None."""
        try:
            return self._handle(msg, received, leases, now)
        except DhcpParseError as exc:  # an option we needed is malformed: the peer's fault
            return Decision(f"dropped: {exc}")

    def _handle(
        self, msg: DhcpMessage, received: ReceivedOn, leases: LeaseTable, now: float
    ) -> Decision:
        link = self._served.links.get(received.link_name)
        if link is None:
            return Decision(f"link {received.link_name!r} is not served")
        kind = msg.message_type
        refusal = _refusal(msg, kind)
        if refusal is not None or kind is None:
            return Decision(refusal or "")
        mac = msg.mac
        key = client_key(mac, msg.options.get(CLIENT_ID_OPTION))
        req = Request(msg, received, link, leases, now, mac, key)
        if received.port == PXE_BOOT_SERVER_PORT:
            subnet = self._served.address_subnet(req, msg.ciaddr)
            subnets = (subnet,) if subnet is not None else self._served.client_subnets(req)
            return boot_server_ack(msg, subnets, received)
        if link.mode == "proxy":
            return proxy_offer(msg, self._served.client_subnets(req))
        handler = self._handlers.get(kind)
        if handler is None:
            return Decision(f"{kind.name} is not a message a server answers")
        return handler(req)

    # -- DISCOVER ------------------------------------------------------------------------------

    def _discover(self, req: Request) -> Decision:
        subnets = self._served.client_subnets(req)
        if not subnets:
            return _no_subnet(req)
        found = self._offer_address(req, subnets)
        if found is None:
            ids = ", ".join(s.id for s in subnets)
            return Decision(f"no free address for {req.mac} in {ids}: ranges exhausted")
        subnet, ip = found
        change, probe, why = self._offer_hold(req, subnet, ip)
        return self._reply(
            req,
            subnet,
            MessageType.OFFER,
            f"OFFER {_ip(ip)} ({why})",
            yiaddr=ip,
            lease_time=self._served.lease_time(req.msg, subnet),
            change=change,
            probe_ip=probe,
        )

    def _offer_address(
        self, req: Request, subnets: Sequence[SubnetConfig]
    ) -> tuple[SubnetConfig, int] | None:
        leases, key, mac, now = req.leases, req.key, req.mac, req.now
        requested = get_or_none(req.msg, REQUESTED_IP)
        if len(subnets) > 1:  # a shared link: the subnet the client knows first
            reserved = leases.reservation_for(mac)

            def known(s: SubnetConfig) -> bool:
                mine = reserved is not None and s.contains(reserved)
                return mine or leases.find(key, s.id, now) is not None

            subnets = sorted(subnets, key=known, reverse=True)
        for subnet in subnets:
            ip = leases.choose_address(subnet, key, mac, requested, now)
            if ip is not None:
                return subnet, ip
        return None

    def _offer_hold(
        self, req: Request, subnet: SubnetConfig, ip: int
    ) -> tuple[LeaseChange | None, int | None, str]:
        current = req.leases.get(ip)
        mine = current is not None and current.key == req.key and current.active(req.now)
        if mine and current is not None and current.state is LeaseState.BOUND:
            return None, None, "its current binding"
        hold = Lease(
            ip=ip,
            mac=req.mac,
            client_id=req.client_id,
            subnet_id=subnet.id,
            state=LeaseState.OFFERED,
            expires=req.now + self.config.offer_hold,
            hostname=hostname(req.msg, current if mine else None),
            ever_bound=current is not None and current.ever_bound,
        )
        if mine:  # a repeated DISCOVER: same offer, probed already
            return LeaseChange(ChangeKind.OFFER, hold), None, "offered already"
        # An ARP probe can only find a holder on our own link: a relayed subnet is not.
        relayed = req.msg.giaddr != 0
        probe = ip if not relayed and req.leases.needs_probe(ip) else None
        previous = current is not None and current.key == req.key
        why = "previous address" if previous else "never used" if probe else "reused address"
        return LeaseChange(ChangeKind.OFFER, hold), probe, why

    # -- REQUEST -------------------------------------------------------------------------------

    def _request(self, req: Request) -> Decision:
        msg = req.msg
        server_id = msg.get(SERVER_ID)
        requested = msg.get(REQUESTED_IP)
        if server_id is not None:
            return self._selecting(req, server_id, requested or msg.ciaddr)
        if msg.ciaddr:
            return self._renewing(req)
        if requested is not None:
            return self._init_reboot(req, requested)
        return Decision("REQUEST with no server id, requested address (50) or ciaddr")

    def _selecting(self, req: Request, server_id: int, ip: int) -> Decision:
        if self._served.foreign_server(server_id):
            return self._withdraw(req, server_id)
        if not ip:
            return Decision("SELECTING REQUEST without a requested address (50)")
        subnet = containing(ip, self._served.client_subnets(req))
        if subnet is None:
            return self._nak(req, None, f"{_ip(ip)} is on no subnet of this client's link")
        lease = req.leases.get(ip)
        if lease is None or not req.owns(lease):
            return self._nak(req, subnet, f"{_ip(ip)} was not offered to this client")
        if not req.leases.may_hold(ip, subnet, req.key, req.mac, req.now):
            return self._nak(req, subnet, f"{_ip(ip)} is no longer free for this client")
        return self._ack(req, subnet, ip, lease, "selecting")

    def _withdraw(self, req: Request, server_id: int) -> Decision:
        reason = f"client chose server {_ip(server_id)}"
        for lease in req.leases.leases_of(req.key):
            if lease.state is LeaseState.OFFERED and lease.active(req.now):
                ended = replace(lease, state=LeaseState.EXPIRED, expires=req.now)
                change = LeaseChange(ChangeKind.WITHDRAW, ended)
                return Decision(f"{reason}: offer of {_ip(lease.ip)} withdrawn", change=change)
        return Decision(reason)

    def _init_reboot(self, req: Request, ip: int) -> Decision:
        subnets = self._served.client_subnets(req)
        if not subnets:
            return _no_subnet(req)
        subnet = containing(ip, subnets)
        if subnet is None:  # RFC 2131 4.3.2: "SHOULD send a DHCPNAK ... on the wrong network"
            return self._nak(req, subnets[0], f"INIT-REBOOT: {_ip(ip)} is on the wrong network")
        leases = req.leases
        known = leases.find(req.key, subnet.id, req.now) is not None
        reserved = leases.reservation_for(req.mac)
        if not known and (reserved is None or not subnet.contains(reserved)):
            # RFC 2131 4.3.2: "If the DHCP server has no record of this client, then it MUST
            # remain silent" (another server may know it).
            return Decision(f"INIT-REBOOT for {_ip(ip)}: no record of this client, silent")
        for lease in leases.leases_of(req.key):
            bound = lease.state is LeaseState.BOUND and lease.active(req.now)
            if bound and lease.subnet_id == subnet.id and lease.ip != ip:
                return self._nak(req, subnet, f"client is bound to {_ip(lease.ip)}, not {_ip(ip)}")
        if not leases.may_hold(ip, subnet, req.key, req.mac, req.now):
            return self._nak(req, subnet, f"INIT-REBOOT: {_ip(ip)} is not free for this client")
        return self._ack(req, subnet, ip, leases.get(ip), "init-reboot")

    def _renewing(self, req: Request) -> Decision:
        ip = req.msg.ciaddr
        subnet = self._served.address_subnet(req, ip)
        if subnet is None:
            if containing(ip, self.config.subnets) is not None:
                return self._nak(req, None, f"renewing {_ip(ip)} on the wrong network")
            return Decision(f"renewing {_ip(ip)}: not an address of ours, silent")
        routed = not req.msg.giaddr and self._served.is_remote(subnet)
        if routed and not req.owns(req.leases.get(ip)):
            # A unicast renewal from behind a relay looks like one from a client on this
            # link that has the wrong address; only a lease we know proves which it is.
            return self._nak(req, subnet, f"renewing {_ip(ip)}: no lease of this client there")
        if not req.leases.may_hold(ip, subnet, req.key, req.mac, req.now):
            # Outside our ranges (another server's lease), held by another client,
            # reserved for another MAC, or in quarantine.
            return self._nak(req, subnet, f"renewing {_ip(ip)}: not ours to extend")
        return self._ack(req, subnet, ip, req.leases.get(ip), "renewing")

    def _ack(
        self, req: Request, subnet: SubnetConfig, ip: int, current: Lease | None, label: str
    ) -> Decision:
        lease_time = self._served.lease_time(req.msg, subnet)
        mine = current if current is not None and current.key == req.key else None
        lease = Lease(
            ip=ip,
            mac=req.mac,
            client_id=req.client_id,
            subnet_id=subnet.id,
            state=LeaseState.BOUND,
            expires=req.now + lease_time,
            hostname=hostname(req.msg, mine),
            ever_bound=True,
        )
        return self._reply(
            req,
            subnet,
            MessageType.ACK,
            f"ACK {_ip(ip)} ({label})",
            yiaddr=ip,
            ciaddr=req.msg.ciaddr,
            lease_time=lease_time,
            change=LeaseChange(ChangeKind.BIND, lease),
        )

    def _nak(self, req: Request, subnet: SubnetConfig | None, reason: str) -> Decision:
        msg = req.msg
        server_id = subnet.server_address if subnet is not None else req.link.address
        fields = ReplyFields(MessageType.NAK, server_id, reply_flags(msg, MessageType.NAK))
        packet = build_reply(msg, fields)
        destination = reply_destination(msg, MessageType.NAK, 0)
        subnet_id = subnet.id if subnet is not None else None
        return Decision(f"NAK: {reason}", packet, destination, subnet_id=subnet_id)

    # -- replies -------------------------------------------------------------------------------

    def _reply(
        self,
        req: Request,
        subnet: SubnetConfig,
        reply_type: MessageType,
        reason: str,
        *,
        yiaddr: int,
        lease_time: int,
        change: LeaseChange | None,
        ciaddr: int = 0,
        probe_ip: int | None = None,
    ) -> Decision:
        """An OFFER or an ACK of an address, with the subnet's options and boot options."""
        msg = req.msg
        body = self._served.options[subnet.id]
        siaddr, file = 0, b""
        boot = decide_boot(msg, subnet.boot)
        choice = boot if isinstance(boot, BootChoice) else None
        if choice is not None and subnet.boot is not None:
            fields = boot_fields(choice, subnet.boot, msg, proxy=False)
            siaddr, file = fields.siaddr, fields.file
            body = {**body, **fields.options}
        elif isinstance(boot, NoBoot) and boot.network_boot:
            reason = f"{reason}; no boot: {boot.reason}"
        flags = reply_flags(msg, reply_type)
        lease = cached_lease_options(lease_time)
        packet = None
        if choice is None:  # the common case: a reply that is the same for every client
            templates = self._templates
            template = templates.get(msg, subnet, reply_type, lease_time, lease=lease, body=body)
            packet = template.render(msg, flags, ciaddr, yiaddr)
        if packet is None:
            packet = build_reply(
                msg,
                ReplyFields(reply_type, subnet.server_address, flags, ciaddr, yiaddr, siaddr,
                            file, lease, body),
            )  # fmt: skip
        destination = reply_destination(msg, reply_type, yiaddr)
        return Decision(reason, packet, destination, change, choice, probe_ip, subnet.id)


def _refusal(msg: DhcpMessage, kind: MessageType | None) -> str | None:
    """Why ``msg`` is not a request this server handles at all, or None."""
    if msg.op != BOOTREQUEST:
        return "not a BOOTREQUEST"
    if kind is None:
        return "plain BOOTP request (no option 53): BOOTP is not served"
    if msg.htype != HTYPE_ETHERNET or msg.hlen != 6:
        return f"hardware type {msg.htype}/{msg.hlen}: only Ethernet is served"
    return None


def _no_subnet(req: Request) -> Decision:
    where = f"giaddr {_ip(req.msg.giaddr)}" if req.msg.giaddr else f"link {req.link.name}"
    return Decision(f"no subnet configured for {where}")
