"""DhcpServer: DISCOVER/OFFER and the four REQUEST states of RFC 2131 4.3.2, bytes in and out."""

from __future__ import annotations

from dhcp_server_lab import IP, LAN, RELAY_SERVER, REMOTE, SERVER, Lab, lan_only_config

from edgebox.wire.dhcp import (
    BROADCAST_ADDRESS,
    CLASSLESS_ROUTES,
    DNS_SERVERS,
    DOMAIN_NAME,
    DOMAIN_SEARCH,
    LEASE_TIME,
    REBINDING_TIME,
    RENEWAL_TIME,
    ROUTERS,
    SERVER_ID,
    SUBNET_MASK,
    ClasslessRoute,
    DhcpMessage,
    MessageType,
)
from edgebox.wire.dhcp.destination import BROADCAST_IP, Destination, DestinationKind
from edgebox.wire.dhcp.leases import ChangeKind, LeaseState
from edgebox.wire.dhcp.server_config import AddressRange

RANGE = AddressRange(IP("10.0.0.100"), IP("10.0.0.199"))
OPTION_82 = bytes.fromhex("010c73777031323a766c616e3230") + bytes.fromhex("02060c42a1b2c3d4")


def test_discover_gets_an_offer_with_every_option_of_the_subnet(lab: Lab) -> None:
    client = lab.client()
    out = lab.send(client.discover())
    reply = out.reply
    assert reply is not None and out.kind is MessageType.OFFER
    assert (reply.op, reply.xid, reply.chaddr) == (2, client.xid, client.chaddr)
    assert reply.yiaddr in RANGE and reply.ciaddr == 0 and reply.giaddr == 0
    assert reply.get(SERVER_ID) == SERVER
    assert (reply.get(LEASE_TIME), reply.get(RENEWAL_TIME), reply.get(REBINDING_TIME)) == (
        3600,
        1800,
        3150,
    )
    assert reply.get(SUBNET_MASK) == IP("255.255.255.0")
    assert reply.get(ROUTERS) == (IP("10.0.0.1"),)
    assert reply.get(DNS_SERVERS) == (IP("10.0.0.1"), IP("1.1.1.1"))
    assert reply.get(DOMAIN_NAME) == "lab.example"
    assert reply.get(DOMAIN_SEARCH) == ("lab.example", "example")
    assert reply.options[26] == (1500).to_bytes(2, "big")
    assert reply.options[42] == IP("10.0.0.1").to_bytes(4, "big")
    assert reply.get(BROADCAST_ADDRESS) == IP("10.0.0.255")
    # RFC 3442: clients that take 121 ignore option 3, so 121 carries the default route too.
    assert reply.get(CLASSLESS_ROUTES) == (
        ClasslessRoute(IP("192.168.50.0"), 24, IP("10.0.0.254")),
        ClasslessRoute(0, 0, IP("10.0.0.1")),
    )
    assert list(reply.options)[:5] == [53, 54, 51, 58, 59]
    assert out.decision.destination == Destination(DestinationKind.BROADCAST, BROADCAST_IP, 68)
    change = out.decision.change
    assert change is not None and change.kind is ChangeKind.OFFER and not change.durable
    assert change.lease.state is LeaseState.OFFERED
    assert change.lease.expires == lab.now + lab.config.offer_hold
    assert out.decision.probe_ip == reply.yiaddr  # never used: ARP-probe it first
    assert out.decision.subnet_id == LAN


def test_the_parameter_request_list_orders_options_and_removes_none(lab: Lab) -> None:
    out = lab.send(lab.client().discover(opt55=bytes([121, 6, 3, 1])))
    assert out.reply is not None
    codes = list(out.reply.options)
    assert codes[:5] == [53, 54, 51, 58, 59]
    assert codes[5:9] == [121, 6, 3, 1]
    assert {15, 26, 28, 42, 119} <= set(codes[9:])


def test_the_reply_fits_the_client_maximum_message_size() -> None:
    long_names = tuple(f"{'x' * 60}.{'y' * 60}.example" for _ in range(4))
    lab = Lab(lan_only_config(domain_search=long_names))
    big = lab.send(lab.client().discover(opt57=(1500).to_bytes(2, "big")))
    assert big.reply is not None and 119 in big.reply.options
    assert big.decision.packet is not None and len(big.decision.packet) > 548
    small = lab.send(lab.client().discover(opt55=bytes([1, 3, 119])))
    assert small.reply is not None and small.decision.packet is not None
    assert len(small.decision.packet) <= 576 - 28
    # Unrequested options go first; the mask and routers (requested) stay.
    assert {1, 3, 51, 53, 54} <= set(small.reply.options)


def test_a_repeated_discover_gets_the_same_offer_without_a_new_probe(lab: Lab) -> None:
    client = lab.client()
    first = lab.send(client.discover())
    again = lab.send(client.discover())
    assert again.yiaddr == first.yiaddr
    assert again.decision.probe_ip is None


def test_an_address_found_in_use_by_the_probe_is_skipped(lab: Lab) -> None:
    client = lab.client()
    discover = client.discover()
    first = lab.send(discover)
    assert first.decision.probe_ip == first.yiaddr
    lab.leases.mark_in_use(first.yiaddr, lab.now)  # the ARP probe was answered
    second = lab.send(discover)
    assert second.yiaddr != first.yiaddr
    assert second.decision.probe_ip == second.yiaddr


def test_an_offer_holds_its_address_until_offer_hold_passes() -> None:
    lab = Lab(lan_only_config(ranges=(AddressRange(RANGE.start, RANGE.start + 1),)))
    first = lab.send(lab.client().discover())
    other = lab.send(lab.client().discover())
    assert other.yiaddr != first.yiaddr
    lab.advance(lab.config.offer_hold + 1)
    late = lab.send(lab.client().discover())
    assert late.yiaddr in (first.yiaddr, other.yiaddr)  # a lapsed offer frees its address


def test_selecting_request_for_the_offer_is_acked_durably(lab: Lab) -> None:
    client = lab.client(opt12=b"node-1")
    offer = lab.send(client.discover())
    ack = lab.send(client.select(offer.yiaddr))
    reply = ack.reply
    assert reply is not None and ack.kind is MessageType.ACK
    assert reply.yiaddr == offer.yiaddr and reply.get(LEASE_TIME) == 3600
    change = ack.decision.change
    assert change is not None and change.kind is ChangeKind.BIND and change.durable
    assert change.lease.state is LeaseState.BOUND and change.lease.ever_bound
    assert change.lease.hostname == "node-1"
    assert change.lease.expires == lab.now + 3600
    assert ack.decision.probe_ip is None


def test_selecting_request_for_an_address_not_offered_is_naked(lab: Lab) -> None:
    client = lab.client()
    lab.send(client.discover())
    nak = lab.send(client.select(IP("10.0.0.150")))
    reply = nak.reply
    assert reply is not None and nak.kind is MessageType.NAK
    assert reply.yiaddr == 0 and LEASE_TIME.code not in reply.options
    assert reply.get(SERVER_ID) == SERVER
    assert nak.decision.destination == Destination(DestinationKind.BROADCAST, BROADCAST_IP, 68)
    assert nak.decision.change is None


def test_selecting_another_server_withdraws_our_offer_silently() -> None:
    lab = Lab(lan_only_config(ranges=(AddressRange(RANGE.start, RANGE.start),)))
    client = lab.client()
    offer = lab.send(client.discover())
    assert lab.send(lab.client().discover()).reply is None  # the only address is held
    out = lab.send(client.select(offer.yiaddr, server_id=IP("10.0.0.77")))
    assert out.reply is None and "chose server 10.0.0.77" in out.decision.reason
    assert out.decision.change is not None and out.decision.change.kind is ChangeKind.WITHDRAW
    assert lab.send(lab.client().discover()).yiaddr == offer.yiaddr


def test_init_reboot_of_its_own_address_is_acked(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    lab.advance(600)
    ack = lab.send(client.init_reboot(ip))
    assert ack.kind is MessageType.ACK and ack.yiaddr == ip
    # Even after the lease expired, while the address is still free for it.
    lab.advance(7200)
    assert lab.send(client.init_reboot(ip)).kind is MessageType.ACK


def test_init_reboot_on_the_wrong_network_is_naked(lab: Lab) -> None:
    client = lab.client()
    lab.bind(client)
    nak = lab.send(client.init_reboot(IP("192.168.7.10")))
    assert nak.kind is MessageType.NAK and "wrong network" in nak.decision.reason


def test_init_reboot_for_an_address_held_by_another_client_is_naked(lab: Lab) -> None:
    client, other = lab.client(), lab.client()
    lab.bind(client)
    taken = lab.bind(other)
    lab.advance(4000)  # the client's own lease lapses; the other renews
    assert lab.send(other.renew(taken)).kind is MessageType.ACK
    assert lab.send(client.init_reboot(taken)).kind is MessageType.NAK


def test_init_reboot_for_another_address_while_bound_is_naked(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    nak = lab.send(client.init_reboot(ip + 1))
    assert nak.kind is MessageType.NAK and "bound to" in nak.decision.reason


def test_init_reboot_of_a_known_client_for_a_free_address_is_acked(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    lab.send(client.release(ip))
    ack = lab.send(client.init_reboot(IP("10.0.0.180")))
    assert ack.kind is MessageType.ACK and ack.yiaddr == IP("10.0.0.180")


def test_init_reboot_from_an_unknown_client_is_ignored(lab: Lab) -> None:
    out = lab.send(lab.client().init_reboot(IP("10.0.0.150")))
    assert out.reply is None and "no record" in out.decision.reason
    assert out.decision.change is None


def test_renewing_extends_the_lease_and_answers_ciaddr(lab: Lab) -> None:
    client = lab.client()
    client.broadcast = False
    ip = lab.bind(client)
    lab.advance(1800)
    ack = lab.send(client.renew(ip), source=(ip, 68))
    reply = ack.reply
    assert reply is not None and ack.kind is MessageType.ACK
    assert reply.yiaddr == ip and reply.ciaddr == ip
    assert ack.decision.destination == Destination(DestinationKind.CLIENT_ADDRESS, ip, 68)
    change = ack.decision.change
    assert change is not None and change.durable and change.lease.expires == lab.now + 3600


def test_rebinding_broadcast_is_handled_like_renewing(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    lab.advance(3200)
    ack = lab.send(client.renew(ip))  # broadcast flag set, as a rebinding client may
    assert ack.kind is MessageType.ACK
    assert ack.decision.destination == Destination(DestinationKind.CLIENT_ADDRESS, ip, 68)


def test_renewing_an_address_from_another_servers_range_is_naked(lab: Lab) -> None:
    client = lab.client()
    nak = lab.send(client.renew(IP("10.0.0.50")))  # in the subnet, outside our range
    assert nak.kind is MessageType.NAK and "not ours" in nak.decision.reason
    # A NAK is broadcast even though ciaddr is set (RFC 2131 4.1).
    assert nak.decision.destination == Destination(DestinationKind.BROADCAST, BROADCAST_IP, 68)


def test_renewing_someone_elses_address_is_naked(lab: Lab) -> None:
    ip = lab.bind(lab.client())
    assert lab.send(lab.client().renew(ip)).kind is MessageType.NAK


def test_renewing_an_address_of_no_subnet_of_ours_is_ignored(lab: Lab) -> None:
    out = lab.send(lab.client().renew(IP("172.16.0.5")))
    assert out.reply is None and "not an address of ours" in out.decision.reason


def test_renewing_an_address_of_another_links_subnet_is_naked(lab: Lab) -> None:
    out = lab.send(lab.client().renew(IP("192.168.1.50")))
    assert out.kind is MessageType.NAK and "wrong network" in out.decision.reason


def test_renewing_after_expiry_while_still_free_is_acked(lab: Lab) -> None:
    client = lab.client()
    ip = lab.bind(client)
    lab.advance(5000)
    assert lab.send(client.renew(ip)).kind is MessageType.ACK


def test_the_client_may_ask_for_a_shorter_lease_not_a_longer_one(lab: Lab) -> None:
    client = lab.client()
    short = lab.send(client.discover(opt51=(30).to_bytes(4, "big")))
    assert short.reply is not None and short.reply.get(LEASE_TIME) == lab.config.min_lease
    long = lab.send(client.discover(opt51=(10**6).to_bytes(4, "big")))
    assert long.reply is not None and long.reply.get(LEASE_TIME) == 3600
    mid = lab.send(client.discover(opt51=(600).to_bytes(4, "big")))
    assert mid.reply is not None and mid.reply.get(LEASE_TIME) == 600


def test_option_61_is_echoed_and_identifies_the_client(lab: Lab) -> None:
    duid = b"\xff\x00\x00\x00\x01\x00\x04\xaa\xbb"
    client = lab.client(opt61=duid)
    ip = lab.bind(client)
    offer = lab.send(client.discover())
    assert offer.reply is not None and offer.reply.options[61] == duid
    assert offer.yiaddr == ip
    # Same MAC, another client id: another client (RFC 2131 4.2).
    stranger = lab.client(client.mac, opt61=b"\xff\x09\x09")
    assert lab.send(stranger.discover()).yiaddr != ip


def test_pxe_rom_and_ipxe_on_one_nic_share_one_address(lab: Lab) -> None:
    rom = lab.client()
    ip = lab.bind(rom)
    ipxe = lab.client(rom.mac, opt61=b"\x01" + rom.chaddr, opt77=b"iPXE")
    offer = lab.send(ipxe.discover())
    assert offer.yiaddr == ip


def test_relayed_requests_use_giaddrs_subnet_and_echo_option_82(lab: Lab) -> None:
    client = lab.client(opt82=OPTION_82)
    client.giaddr = IP("10.20.0.1")
    offer = lab.send(client.discover())
    reply = offer.reply
    assert reply is not None and offer.kind is MessageType.OFFER
    assert IP("10.20.0.50") <= reply.yiaddr <= IP("10.20.0.99")
    assert reply.giaddr == IP("10.20.0.1") and reply.get(SERVER_ID) == RELAY_SERVER
    assert reply.options[82] == OPTION_82 and list(reply.options)[-1] == 82
    assert offer.decision.destination == Destination(DestinationKind.RELAY, IP("10.20.0.1"), 67)
    assert offer.decision.subnet_id == REMOTE
    assert offer.decision.probe_ip is None  # an ARP probe cannot reach a relayed subnet
    ack = lab.send(client.select(reply.yiaddr, RELAY_SERVER))
    assert ack.kind is MessageType.ACK and ack.reply is not None
    assert ack.reply.options[82] == OPTION_82 and ack.reply.get(LEASE_TIME) == 7200


def test_a_relayed_nak_sets_the_broadcast_bit(lab: Lab) -> None:
    client = lab.client(opt82=OPTION_82)
    client.giaddr = IP("10.20.0.1")
    client.broadcast = False
    nak = lab.send(client.init_reboot(IP("10.0.0.150")))  # not giaddr's subnet
    assert nak.reply is not None and nak.kind is MessageType.NAK
    assert nak.reply.flags & 0x8000 and nak.reply.options[82] == OPTION_82
    assert nak.decision.destination == Destination(DestinationKind.RELAY, IP("10.20.0.1"), 67)


def test_a_relayed_request_from_no_known_subnet_is_ignored(lab: Lab) -> None:
    client = lab.client()
    client.giaddr = IP("10.99.0.1")
    out = lab.send(client.discover())
    assert out.reply is None and "no subnet" in out.decision.reason


def test_without_the_broadcast_bit_the_offer_goes_to_chaddr_and_yiaddr(lab: Lab) -> None:
    client = lab.client()
    client.broadcast = False
    offer = lab.send(client.discover())
    kind = DestinationKind.LINK_BROADCAST_OR_UNICAST_TO_CHADDR
    assert offer.decision.destination == Destination(kind, offer.yiaddr, 68)


def test_ranges_exhausted_means_no_offer_and_a_reason() -> None:
    tiny = AddressRange(IP("10.0.0.100"), IP("10.0.0.101"))
    lab = Lab(lan_only_config(ranges=(tiny,)))
    lab.bind(lab.client())
    lab.bind(lab.client())
    out = lab.send(lab.client().discover())
    assert out.reply is None and out.decision.change is None
    assert "ranges exhausted" in out.decision.reason


def test_bootp_and_other_oddities_are_ignored(lab: Lab) -> None:
    bootp = DhcpMessage(op=1, xid=7, chaddr=bytes(6))
    assert "BOOTP" in lab.send(bootp).decision.reason
    reply = lab.client().message(MessageType.DISCOVER)
    reply.op = 2
    assert lab.send(reply).reply is None
    assert "not served" in lab.send(lab.client().discover(), link="wlan9").decision.reason
    offer = lab.client().message(MessageType.OFFER)
    assert "not a message a server answers" in lab.send(offer).decision.reason


def test_a_malformed_option_the_server_needs_drops_the_request(lab: Lab) -> None:
    out = lab.send(lab.client().message(MessageType.REQUEST, extra={54: b"\x0a\x00\x00"}))
    assert out.reply is None and "option 54" in out.decision.reason
    # A malformed option it can do without is ignored.
    offer = lab.send(lab.client().discover(opt50=b"\x01", opt51=b"\x00"))
    assert offer.kind is MessageType.OFFER
