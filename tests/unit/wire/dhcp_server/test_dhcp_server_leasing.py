"""DhcpServer over time: DECLINE, RELEASE, INFORM, reservations, expiry and reuse."""

from __future__ import annotations

from dhcp_server_lab import IP, SERVER, Lab, lan_only_config

from edgebox.wire.dhcp import LEASE_TIME, RENEWAL_TIME, SUBNET_MASK, MessageType
from edgebox.wire.dhcp.destination import Destination, DestinationKind
from edgebox.wire.dhcp.leases import ChangeKind, LeaseState
from edgebox.wire.dhcp.server_config import AddressRange

ONE = AddressRange(IP("10.0.0.100"), IP("10.0.0.100"))
TWO = AddressRange(IP("10.0.0.100"), IP("10.0.0.101"))


def test_decline_quarantines_and_the_client_gets_another_address() -> None:
    lab = Lab(lan_only_config(ranges=(TWO,)))
    client = lab.client()
    ip = lab.bind(client)
    out = lab.send(client.decline(ip))
    assert out.reply is None
    change = out.decision.change
    assert change is not None and change.kind is ChangeKind.DECLINE and change.durable
    assert change.lease.state is LeaseState.DECLINED
    assert change.lease.expires == lab.now + lab.config.decline_quarantine
    again = lab.send(client.discover())
    assert again.yiaddr != ip
    assert lab.send(client.select(again.yiaddr)).kind is MessageType.ACK
    # Nobody gets it during the quarantine.
    assert lab.send(lab.client().discover()).reply is None
    lab.advance(lab.config.decline_quarantine + 1)
    later = lab.send(lab.client().discover())
    assert later.yiaddr == ip
    assert later.decision.probe_ip == ip  # declined: probe before offering it again


def test_decline_of_an_address_that_is_not_the_clients_is_ignored(lab: Lab) -> None:
    ip = lab.bind(lab.client())
    out = lab.send(lab.client().decline(ip))
    assert out.decision.change is None and "not this client's" in out.decision.reason
    other_server = lab.send(lab.client().decline(ip, server_id=IP("10.0.0.9")))
    assert other_server.decision.change is None


def test_release_frees_the_address_and_the_client_gets_it_back(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    out = lab.send(client.release(ip))
    assert out.reply is None
    change = out.decision.change
    assert change is not None and change.kind is ChangeKind.RELEASE and change.durable
    assert change.lease.state is LeaseState.RELEASED and change.lease.expires == lab.now
    offer = lab.send(client.discover())
    assert offer.yiaddr == ip
    assert offer.decision.probe_ip is None  # used before: no ARP probe
    assert "previous address" in offer.decision.reason


def test_release_by_another_client_is_ignored(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    out = lab.send(lab.client().release(ip))
    assert out.decision.change is None
    assert lab.send(client.renew(ip)).kind is MessageType.ACK


def test_inform_gets_options_but_no_address_or_lease(lab: Lab) -> None:
    ip = IP("10.0.0.42")  # configured by hand, outside the ranges
    out = lab.send(lab.client().inform(ip))
    reply = out.reply
    assert reply is not None and out.kind is MessageType.ACK
    assert reply.yiaddr == 0 and reply.ciaddr == ip
    assert LEASE_TIME.code not in reply.options and RENEWAL_TIME.code not in reply.options
    assert reply.get(SUBNET_MASK) == IP("255.255.255.0")
    assert out.decision.destination == Destination(DestinationKind.CLIENT_ADDRESS, ip, 68)
    assert out.decision.change is None


def test_inform_from_elsewhere_is_ignored(lab: Lab) -> None:
    assert lab.send(lab.client().inform(IP("172.16.1.1"))).reply is None


def test_a_reserved_mac_always_gets_its_address_and_nobody_else_does(lab: Lab) -> None:
    reserved = IP("10.0.0.20")
    owner = lab.client()
    lab.leases.set_reservations({owner.mac: reserved})
    assert lab.bind(owner) == reserved
    intruder = lab.client()
    assert lab.send(intruder.init_reboot(reserved)).reply is None  # unknown client: silent
    assert lab.send(intruder.discover(opt50=reserved.to_bytes(4, "big"))).yiaddr != reserved
    lab.bind(intruder)
    assert lab.send(intruder.init_reboot(reserved)).kind is MessageType.NAK
    assert lab.send(intruder.renew(reserved)).kind is MessageType.NAK
    lab.send(owner.release(reserved))
    assert lab.send(intruder.discover(opt50=reserved.to_bytes(4, "big"))).yiaddr != reserved
    assert lab.send(owner.discover()).yiaddr == reserved


def test_a_new_reservation_moves_the_client_at_its_next_renewal(lab: Lab) -> None:
    client = lab.client()
    dynamic = lab.bind(client)
    lab.leases.set_reservations({client.mac: IP("10.0.0.20")})
    assert lab.send(client.renew(dynamic)).kind is MessageType.NAK
    assert lab.bind(client) == IP("10.0.0.20")


def test_an_expired_lease_is_reused_by_another_client() -> None:
    lab = Lab(lan_only_config(ranges=(ONE,)))
    first = lab.client()
    ip = lab.bind(first)
    second = lab.client()
    assert lab.send(second.discover()).reply is None
    lab.advance(3601)
    offer = lab.send(second.discover())
    assert offer.yiaddr == ip and offer.decision.probe_ip is None
    assert lab.bind(second) == ip
    # The first client comes back: its address is taken now.
    assert lab.send(first.renew(ip)).kind is MessageType.NAK
    assert lab.send(first.discover()).reply is None


def test_expire_reports_lapsed_bindings_for_the_adapter(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    lab.advance(3601)
    ended = lab.leases.expire(lab.now)
    assert [(x.ip, x.state) for x in ended] == [(ip, LeaseState.BOUND)]
    record = lab.leases.get(ip)
    assert record is not None and record.state is LeaseState.EXPIRED and record.ever_bound
    assert lab.send(client.discover()).yiaddr == ip


def test_undoing_a_failed_commit_puts_the_offer_back(lab: Lab) -> None:
    client = lab.client()
    offer = lab.send(client.discover())
    before = lab.leases.snapshot(offer.yiaddr)
    ack = lab.send(client.select(offer.yiaddr))  # Lab.send applied it
    assert ack.decision.change is not None and ack.decision.change.durable
    lab.leases.restore(before)  # the commit failed: nothing was sent
    record = lab.leases.get(offer.yiaddr)
    assert record is not None and record.state is LeaseState.OFFERED
    assert lab.send(client.select(offer.yiaddr)).kind is MessageType.ACK  # the client retries


def test_the_server_id_of_a_nak_without_a_subnet_is_the_links_address(lab: Lab) -> None:
    client = lab.client()
    nak = lab.send(client.renew(IP("192.168.1.50")))
    assert nak.reply is not None and nak.reply.options[54] == SERVER.to_bytes(4, "big")
