"""Boot options in OFFERs and ACKs of a full server: siaddr, file, 60, 66, 67, 175."""

from __future__ import annotations

from dhcp_server_lab import HTTP_UEFI, IPXE, PXE_BIOS, PXE_UEFI, SERVER, Lab, lan_only_config

from edgebox.wire.dhcp import (
    BOOTFILE_NAME,
    IPXE_ENCAP,
    TFTP_SERVER_NAME,
    VENDOR_CLASS_ID,
    MessageType,
)
from edgebox.wire.dhcp.boot import BootKind
from edgebox.wire.dhcp.options import IPXE_NO_PXEDHCP


def test_bios_pxe_offer_points_at_the_tftp_loader(lab: Lab) -> None:
    client = lab.client(options=PXE_BIOS)
    offer = lab.send(client.discover())
    reply = offer.reply
    assert reply is not None and offer.kind is MessageType.OFFER
    assert reply.siaddr == SERVER and reply.file == b"undionly.kpxe"
    assert reply.get(TFTP_SERVER_NAME) == "10.0.0.1"
    assert reply.get(BOOTFILE_NAME) == "undionly.kpxe"
    assert VENDOR_CLASS_ID.code not in reply.options  # a full server need not claim PXE
    assert offer.decision.boot is not None and offer.decision.boot.kind is BootKind.BIOS
    ack = lab.send(client.select(reply.yiaddr))
    assert ack.reply is not None and ack.reply.file == b"undionly.kpxe"
    assert ack.decision.boot == offer.decision.boot


def test_uefi_pxe_offer_points_at_the_uefi_loader(lab: Lab) -> None:
    client = lab.client(options=PXE_UEFI)
    reply = lab.send(client.discover()).reply
    assert reply is not None and reply.file == b"snponly.efi" and reply.siaddr == SERVER


def test_uefi_http_boot_offer_has_httpclient_and_a_url(lab: Lab) -> None:
    client = lab.client(options=HTTP_UEFI)
    offer = lab.send(client.discover())
    reply = offer.reply
    assert reply is not None
    assert reply.get(VENDOR_CLASS_ID) == "HTTPClient"
    assert reply.get(BOOTFILE_NAME) == "http://10.0.0.1:5248/loaders/ipxe.efi"
    assert reply.file == b"http://10.0.0.1:5248/loaders/ipxe.efi"
    assert reply.siaddr == 0 and TFTP_SERVER_NAME.code not in reply.options


def test_ipxe_gets_the_script_and_no_pxedhcp(lab: Lab) -> None:
    client = lab.client(options=IPXE)
    offer = lab.send(client.discover())
    reply = offer.reply
    assert reply is not None
    script = f"http://10.0.0.1:5248/boot/ipxe?mac={client.mac}"
    assert reply.get(BOOTFILE_NAME) == script and reply.file == script.encode()
    assert reply.get(IPXE_ENCAP) == {IPXE_NO_PXEDHCP: b"\x01"}
    boot = offer.decision.boot
    assert boot is not None and boot.kind is BootKind.IPXE and not boot.first_stage


def test_a_client_that_does_not_network_boot_gets_no_boot_options(lab: Lab) -> None:
    offer = lab.send(lab.client(opt60=b"MSFT 5.0").discover())
    reply = offer.reply
    assert reply is not None and offer.kind is MessageType.OFFER
    assert reply.siaddr == 0 and reply.file == b""
    assert not {43, 60, 66, 67, 175} & set(reply.options)
    assert offer.decision.boot is None


def test_an_unknown_architecture_gets_an_address_and_a_reason(lab: Lab) -> None:
    client = lab.client(opt60=b"PXEClient:Arch:00006:UNDI:003000", opt93=b"\x00\x06")
    offer = lab.send(client.discover())
    assert offer.kind is MessageType.OFFER and offer.decision.boot is None
    assert "no loader for client architecture 6" in offer.decision.reason


def test_a_url_too_long_for_the_file_field_goes_in_option_67_only(lab: Lab) -> None:
    mac = "52:54:00:12:34:56"
    long_script = "http://10.0.0.1:5248/" + "x" * 150 + "?mac={mac}"
    subnet = lab.config.subnets[0]
    assert subnet.boot is not None
    boot = type(subnet.boot)(
        tftp_server=subnet.boot.tftp_server,
        http_base=subnet.boot.http_base,
        script_url=long_script,
    )
    lab = Lab(lan_only_config(boot=boot))
    client = lab.client(mac, options=IPXE)
    reply = lab.send(client.discover(opt57=(1400).to_bytes(2, "big"))).reply
    assert reply is not None and reply.file == b""
    assert reply.get(BOOTFILE_NAME) == long_script.replace("{mac}", mac)
