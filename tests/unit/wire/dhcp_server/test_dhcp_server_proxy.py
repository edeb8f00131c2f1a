"""proxyDHCP: boot options beside another server, and the PXE boot-server port 4011."""

from __future__ import annotations

from dhcp_server_lab import HTTP_UEFI, IP, IPXE, PROXY_LAN, PROXY_SERVER, PXE_UEFI, SERVER, Lab

from edgebox.wire.dhcp import (
    BOOTFILE_NAME,
    LEASE_TIME,
    SERVER_ID,
    VENDOR_CLASS_ID,
    VENDOR_SPECIFIC,
    MessageType,
)
from edgebox.wire.dhcp.destination import BROADCAST_IP, Destination, DestinationKind
from edgebox.wire.dhcp.options import PXE_BOOT_ITEM, PXE_DISCOVERY_CONTROL

UUID = b"\x00" + bytes(range(16))


def test_proxy_offer_has_no_address_and_the_boot_file(lab: Lab) -> None:
    client = lab.client(options=PXE_UEFI, opt97=UUID)
    offer = lab.send(client.discover(), link="eth1")
    reply = offer.reply
    assert reply is not None and offer.kind is MessageType.OFFER
    assert reply.yiaddr == 0
    assert reply.get(SERVER_ID) == PROXY_SERVER
    assert reply.get(VENDOR_CLASS_ID) == "PXEClient"
    assert reply.get(VENDOR_SPECIFIC) == {PXE_DISCOVERY_CONTROL: b"\x08"}
    assert reply.options[43].endswith(b"\xff")  # PXE ends its sub-options with End
    assert reply.file == b"snponly.efi" and reply.siaddr == PROXY_SERVER
    assert reply.get(BOOTFILE_NAME) == "snponly.efi"
    assert reply.options[97] == UUID
    assert not {1, 3, 51, 58, 59} & set(reply.options)
    assert offer.decision.change is None and offer.decision.probe_ip is None
    assert offer.decision.destination == Destination(DestinationKind.BROADCAST, BROADCAST_IP, 68)
    assert offer.decision.subnet_id == PROXY_LAN
    assert len(lab.leases) == 0


def test_proxy_offer_to_uefi_http_boot_echoes_httpclient(lab: Lab) -> None:
    offer = lab.send(lab.client(options=HTTP_UEFI).discover(), link="eth1")
    reply = offer.reply
    assert reply is not None and reply.get(VENDOR_CLASS_ID) == "HTTPClient"
    assert 43 not in reply.options
    assert reply.get(BOOTFILE_NAME) == "http://192.168.1.5:5248/loaders/ipxe.efi"


def test_proxy_offer_to_ipxe_is_the_script(lab: Lab) -> None:
    client = lab.client(options=IPXE)
    reply = lab.send(client.discover(), link="eth1").reply
    assert reply is not None
    assert reply.get(BOOTFILE_NAME) == f"http://192.168.1.5:5248/boot/ipxe?mac={client.mac}"
    # iPXE ignores a ProxyDHCPACK without siaddr and a file name, even for an http:// URL.
    assert reply.siaddr == PROXY_SERVER


def test_proxy_ignores_everything_else(lab: Lab) -> None:
    plain = lab.client()
    assert lab.send(plain.discover(), link="eth1").reply is None
    pxe = lab.client(options=PXE_UEFI)
    assert lab.send(pxe.select(IP("192.168.1.60"), IP("192.168.1.1")), link="eth1").reply is None
    assert lab.send(pxe.renew(IP("192.168.1.60")), link="eth1").reply is None
    assert lab.send(pxe.release(IP("192.168.1.60")), link="eth1").decision.change is None
    unknown_arch = lab.client(opt60=b"PXEClient:Arch:00006", opt93=b"\x00\x06")
    out = lab.send(unknown_arch.discover(), link="eth1")
    assert out.reply is None and "no loader" in out.decision.reason
    assert len(lab.leases) == 0


def test_a_boot_server_request_on_4011_is_acked_to_its_source(lab: Lab) -> None:
    address = IP("192.168.1.77")  # from the other DHCP server
    item = b"\x00\x00\x00\x00"
    client = lab.client(options=PXE_UEFI, opt43=bytes([PXE_BOOT_ITEM, 4]) + item + b"\xff")
    request = client.message(MessageType.REQUEST, ciaddr=address)
    ack = lab.send(request, link="eth1", port=4011, source=(address, 4011))
    reply = ack.reply
    assert reply is not None and ack.kind is MessageType.ACK
    assert reply.yiaddr == 0 and reply.ciaddr == address
    assert reply.file == b"snponly.efi" and reply.siaddr == PROXY_SERVER
    assert reply.get(VENDOR_CLASS_ID) == "PXEClient"
    assert reply.get(VENDOR_SPECIFIC) == {PXE_DISCOVERY_CONTROL: b"\x08", PXE_BOOT_ITEM: item}
    assert LEASE_TIME.code not in reply.options
    assert ack.decision.destination == Destination(DestinationKind.SOURCE, address, 4011)
    assert ack.decision.change is None and len(lab.leases) == 0


def test_port_4011_is_answered_on_a_full_server_link_too(lab: Lab) -> None:
    address = IP("10.0.0.150")
    client = lab.client(options=PXE_UEFI)
    request = client.message(MessageType.REQUEST, ciaddr=address)
    ack = lab.send(request, port=4011, source=(address, 68))
    assert ack.reply is not None and ack.reply.get(SERVER_ID) == SERVER
    assert ack.decision.destination == Destination(DestinationKind.SOURCE, address, 68)
    assert ack.decision.change is None
    discover = lab.send(client.discover(), port=4011, source=(address, 68))
    assert discover.reply is None
