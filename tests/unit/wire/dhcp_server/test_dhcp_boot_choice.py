"""choose_boot / decide_boot: options 93, 60, 77 and 175 -> loader, URL or nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dhcp_server_lab import HTTP_UEFI, IPXE, PXE_BIOS, PXE_UEFI, boot_files

from edgebox.wire.dhcp import MESSAGE_TYPE, DhcpMessage, MessageType, parse_message
from edgebox.wire.dhcp.boot import (
    BootChoice,
    BootKind,
    NoBoot,
    Transport,
    choose_boot,
    decide_boot,
)

BOOT = boot_files()
MAC = "00:1b:21:3c:4d:5e"
CODEC_FIXTURES = Path(__file__).parent.parent / "dhcp" / "fixtures"


def discover(options: dict[int, bytes]) -> DhcpMessage:
    return DhcpMessage(
        op=1,
        xid=1,
        chaddr=bytes.fromhex(MAC.replace(":", "")),
        options={MESSAGE_TYPE.code: MESSAGE_TYPE.encode(MessageType.DISCOVER), **options},
    )


def test_bios_pxe_gets_the_bios_loader_over_tftp() -> None:
    choice = choose_boot(discover(PXE_BIOS), BOOT)
    assert choice == BootChoice(
        BootKind.BIOS, "undionly.kpxe", Transport.TFTP, True, 0, "PXEClient"
    )


@pytest.mark.parametrize("arch", [7, 9])
def test_uefi_x64_pxe_gets_the_uefi_loader_over_tftp(arch: int) -> None:
    # 9 is x86-64 in RFC 4578's text, 7 in the IANA registry: firmware sends either.
    options = {**PXE_UEFI, 93: arch.to_bytes(2, "big")}
    choice = choose_boot(discover(options), BOOT)
    assert choice is not None and choice.kind is BootKind.UEFI
    assert (choice.file, choice.transport, choice.first_stage) == (
        "snponly.efi",
        Transport.TFTP,
        True,
    )


def test_uefi_http_boot_gets_a_loader_url_and_httpclient() -> None:
    choice = choose_boot(discover(HTTP_UEFI), BOOT)
    assert choice == BootChoice(
        BootKind.UEFI_HTTP,
        "http://10.0.0.1:5248/loaders/ipxe.efi",
        Transport.HTTP,
        True,
        16,
        "HTTPClient",
    )


def test_arm64_gets_the_arm64_loader_over_tftp_or_http() -> None:
    tftp = choose_boot(discover({60: b"PXEClient:Arch:00011:UNDI:003000", 93: b"\x00\x0b"}), BOOT)
    assert tftp is not None and tftp.kind is BootKind.ARM64
    assert (tftp.file, tftp.transport) == ("ipxe-arm64.efi", Transport.TFTP)
    http = choose_boot(discover({60: b"HTTPClient:Arch:00019", 93: b"\x00\x13"}), BOOT)
    assert http is not None and http.kind is BootKind.ARM64
    assert (http.file, http.transport) == (
        "http://10.0.0.1:5248/loaders/ipxe-arm64.efi",
        Transport.HTTP,
    )
    assert http.vendor_class == "HTTPClient"


def test_ipxe_gets_the_script_url_whatever_its_architecture() -> None:
    choice = choose_boot(discover(IPXE), BOOT)
    assert choice == BootChoice(
        BootKind.IPXE,
        f"http://10.0.0.1:5248/boot/ipxe?mac={MAC}",
        Transport.HTTP,
        False,
        0,
        "PXEClient",
    )
    # Option 175 alone, or user class alone, is enough to know it is iPXE.
    only_175 = {**PXE_UEFI, 175: b"\x13\x01\x01"}
    assert choose_boot(discover(only_175), BOOT).kind is BootKind.IPXE  # type: ignore[union-attr]
    only_77 = {**PXE_UEFI, 77: b"\x04iPXE"}  # RFC 3004 form
    assert choose_boot(discover(only_77), BOOT).kind is BootKind.IPXE  # type: ignore[union-attr]


def test_a_client_that_is_not_network_booting_gets_nothing() -> None:
    assert choose_boot(discover({60: b"MSFT 5.0", 93: b"\x00\x00"}), BOOT) is None
    decision = decide_boot(discover({12: b"laptop"}), BOOT)
    assert isinstance(decision, NoBoot) and not decision.network_boot


def test_an_unknown_architecture_gets_nothing_with_a_reason() -> None:
    decision = decide_boot(discover({60: b"PXEClient:Arch:00006", 93: b"\x00\x06"}), BOOT)
    assert decision == NoBoot("no loader for client architecture 6 (X86_UEFI)", True)
    odd = decide_boot(discover({60: b"PXEClient", 93: b"\x01\x2c"}), BOOT)
    assert isinstance(odd, NoBoot) and "300 (unknown)" in odd.reason


def test_a_malformed_option_93_is_reported() -> None:
    decision = decide_boot(discover({60: b"PXEClient", 93: b"\x00"}), BOOT)
    assert isinstance(decision, NoBoot) and decision.network_boot
    assert "malformed DHCP option 93" in decision.reason and "required for PXE" in decision.reason


def test_without_option_93_the_architecture_comes_from_the_vendor_class() -> None:
    uefi = choose_boot(discover({60: b"PXEClient:Arch:00007:UNDI:003016"}), BOOT)
    assert uefi is not None and uefi.kind is BootKind.UEFI
    old_rom = choose_boot(discover({60: b"PXEClient"}), BOOT)
    assert old_rom is not None and old_rom.kind is BootKind.BIOS


def test_no_boot_configuration_means_no_boot() -> None:
    decision = decide_boot(discover(PXE_BIOS), None)
    assert isinstance(decision, NoBoot) and decision.network_boot


def test_a_configured_uefi_loader_and_script_template_are_used() -> None:
    boot = boot_files()
    custom = type(boot)(
        tftp_server=boot.tftp_server,
        http_base="http://boot.example/",
        script_url="http://boot.example/s/{mac}.ipxe",
        uefi_x64="ipxe.efi",
    )
    assert choose_boot(discover(PXE_UEFI), custom).file == "ipxe.efi"  # type: ignore[union-attr]
    url = choose_boot(discover(IPXE), custom).file  # type: ignore[union-attr]
    assert url == f"http://boot.example/s/{MAC}.ipxe"
    http = choose_boot(discover(HTTP_UEFI), custom)
    assert http is not None and http.file == "http://boot.example/loaders/ipxe.efi"


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("bios_pxe_discover", BootKind.BIOS),
        ("uefi_x64_discover", BootKind.UEFI),
        ("uefi_http_discover", BootKind.UEFI_HTTP),
        ("ipxe_discover", BootKind.IPXE),
    ],
)
def test_the_codec_fixture_packets_boot_as_expected(fixture: str, kind: BootKind) -> None:
    path = CODEC_FIXTURES / f"{fixture}.hex"
    if not path.exists():
        pytest.skip(f"{path} is not there")
    data = bytes.fromhex("".join(re.sub(r"#[^\n]*", "", path.read_text()).split()))
    choice = choose_boot(parse_message(data), BOOT)
    assert isinstance(choice, BootChoice) and choice.kind is kind
