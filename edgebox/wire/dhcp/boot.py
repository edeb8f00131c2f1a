"""How a network-booting client boots: which loader, over which transport, or nothing.

The decision reads four options of the client's request:
- 93 (client architecture, RFC 4578): BIOS, UEFI x86-64, UEFI HTTP, arm64 ...;
- 60 (vendor class): ``PXEClient...`` for PXE firmware, ``HTTPClient...`` for UEFI HTTP boot;
- 77 (user class) ``iPXE`` and 175 (iPXE's encapsulated options): the client already runs
  iPXE, so it gets the HTTP boot script, never a loader again (that would loop for ever:
  QEMU's NIC ROM is iPXE and sends both, see LAB.md);
and returns a `BootChoice` (what to put in the reply) or a `NoBoot` saying why not.
The adapter turns a `BootChoice` into boot-timeline events (``first_stage`` loaders first,
then the iPXE script).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgebox.wire.dhcp.errors import DhcpParseError
from edgebox.wire.dhcp.message import DhcpMessage
from edgebox.wire.dhcp.options import CLIENT_ARCH, USER_CLASS, ClientArch
from edgebox.wire.dhcp.server_config import BootFiles

PXE_CLIENT = "PXEClient"
HTTP_CLIENT = "HTTPClient"
_VENDOR_CLASS = 60
_IPXE_ENCAP = 175
_USER_CLASS = USER_CLASS.code


class BootKind(enum.StrEnum):
    BIOS = "bios"
    UEFI = "uefi"
    UEFI_HTTP = "uefi_http"
    ARM64 = "arm64"
    IPXE = "ipxe"


class Transport(enum.StrEnum):
    TFTP = "tftp"  # file is a path on the TFTP server (siaddr, option 66)
    HTTP = "http"  # file is a URL


@dataclass(frozen=True, slots=True)
class BootChoice:
    kind: BootKind
    file: str  # TFTP path or http(s) URL: the 'file' field and option 67
    transport: Transport
    first_stage: bool  # a loader that will chainload iPXE (False: the iPXE script itself)
    arch: int | None  # option 93 as read (None: iPXE without option 93)
    vendor_class: str | None  # PXEClient / HTTPClient as the client announced it


@dataclass(frozen=True, slots=True)
class NoBoot:
    reason: str
    network_boot: bool  # the client asked to boot from the network and was refused


def choose_boot(msg: DhcpMessage, boot: BootFiles | None) -> BootChoice | None:
    """The boot choice for ``msg``, or None (`decide_boot` says why)."""
    decision = decide_boot(msg, boot)
    return decision if isinstance(decision, BootChoice) else None


_NOT_NETWORK_BOOT = NoBoot("not a network-boot client (no PXEClient/HTTPClient, not iPXE)", False)


def decide_boot(msg: DhcpMessage, boot: BootFiles | None) -> BootChoice | NoBoot:
    options = msg.options
    if _VENDOR_CLASS not in options and _IPXE_ENCAP not in options and _USER_CLASS not in options:
        return _NOT_NETWORK_BOOT  # most requests: checked first, with no decoding at all
    vendor_class = _vendor_class(options.get(_VENDOR_CLASS, b""))
    ipxe = _is_ipxe(msg)
    if vendor_class is None and not ipxe:
        return _NOT_NETWORK_BOOT
    if boot is None:
        return NoBoot("the subnet has no boot configuration", True)
    try:
        arch = _arch(msg, vendor_class)
    except DhcpParseError as exc:
        return NoBoot(f"{exc} (required for PXE)", True)
    if ipxe:
        # Already iPXE: hand it the script. Giving it a loader again would chainload iPXE
        # into iPXE for ever.
        url = boot.script_for(msg.mac)
        return BootChoice(BootKind.IPXE, url, Transport.HTTP, False, arch, vendor_class)
    return _first_stage(arch, vendor_class, boot)


def _first_stage(
    arch: int | None, vendor_class: str | None, boot: BootFiles
) -> BootChoice | NoBoot:
    if arch == ClientArch.X86_BIOS:
        return BootChoice(BootKind.BIOS, boot.bios, Transport.TFTP, True, arch, vendor_class)
    if arch in (ClientArch.X64_UEFI, ClientArch.EBC):
        # 7 is x86-64 UEFI in the IANA registry; RFC 4578's text says 9, and some firmware
        # builds (and dnsmasq's names) still follow the text, so 9 means x86-64 here too.
        return BootChoice(BootKind.UEFI, boot.uefi_x64, Transport.TFTP, True, arch, vendor_class)
    if arch == ClientArch.X64_UEFI_HTTP:
        # UEFI HTTP boot (EDK2 HttpBootDxe) ignores offers that lack option 60 "HTTPClient"
        # and an http:// boot file URL, and retries for about a minute before giving up.
        url = boot.loader_url(boot.uefi_http)
        return BootChoice(BootKind.UEFI_HTTP, url, Transport.HTTP, True, arch, HTTP_CLIENT)
    if arch == ClientArch.ARM64_UEFI:
        return BootChoice(BootKind.ARM64, boot.arm64, Transport.TFTP, True, arch, vendor_class)
    if arch == ClientArch.ARM64_UEFI_HTTP:
        url = boot.loader_url(boot.arm64_http)
        return BootChoice(BootKind.ARM64, url, Transport.HTTP, True, arch, HTTP_CLIENT)
    return NoBoot(f"no loader for client architecture {arch} ({_arch_name(arch)})", True)


def _vendor_class(raw: bytes) -> str | None:
    # Only the prefix matters ("PXEClient:Arch:00000:UNDI:002001"); compare bytes so that
    # a non-UTF-8 option 60 from some unrelated client cannot make the packet unreadable.
    if raw.startswith(b"PXEClient"):
        return PXE_CLIENT
    if raw.startswith(b"HTTPClient"):
        return HTTP_CLIENT
    return None


def _is_ipxe(msg: DhcpMessage) -> bool:
    if _IPXE_ENCAP in msg.options:
        return True
    user_class = msg.get(USER_CLASS)  # its decoder accepts any bytes, it never raises
    return user_class is not None and b"iPXE" in user_class


def _arch(msg: DhcpMessage, vendor_class: str | None) -> int | None:
    arches = msg.get(CLIENT_ARCH)
    if arches:
        # A client may list several (RFC 4578 2.1); firmware sends one, the one it runs.
        return arches[0]
    raw = msg.options.get(_VENDOR_CLASS, b"")
    # Quirk: some old PXE ROMs send no option 93 but say "PXEClient:Arch:00000:..." in 60.
    parts = raw.split(b":")
    if len(parts) > 2 and parts[1] == b"Arch" and parts[2][:5].isdigit():
        return int(parts[2][:5])
    # PXE ROMs older than RFC 4578 that send neither are BIOS ROMs.
    return ClientArch.X86_BIOS.value if vendor_class == PXE_CLIENT else None


def _arch_name(arch: int | None) -> str:
    if arch is None:
        return "none given"
    try:
        return ClientArch(arch).name
    except ValueError:
        return "unknown"
