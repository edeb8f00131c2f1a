"""The DHCP options edgebox reads or writes, each an `OptionField` with a typed value.

A message keeps every option as raw bytes (``msg.options[code]``), so unknown options
and ones a server must echo verbatim (82) survive untouched and parsing stays cheap. An
`OptionField` decodes one on demand and builds one for a reply::

    arch = msg.get(CLIENT_ARCH)              # tuple[int, ...] | None; DhcpParseError if bad
    options = dict([MESSAGE_TYPE.item(MessageType.OFFER), LEASE_TIME.item(3600)])

Codes and formats are from RFC 2132 unless a comment says otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any, Generic, TypeVar

from edgebox.wire.dhcp import values as v
from edgebox.wire.dhcp.classless_routes import (
    ClasslessRoute,
    decode_classless_routes,
    encode_classless_routes,
    format_classless_routes,
)
from edgebox.wire.dhcp.domain_search import (
    decode_domain_search,
    encode_domain_search,
    format_domain_search,
)
from edgebox.wire.dhcp.errors import DhcpParseError

T = TypeVar("T")

PAD = 0
END = 255
OPTION_OVERLOAD = 52  # RFC 2132 9.3; consumed by the parser, never in DhcpMessage.options


class MessageType(IntEnum):
    """Option 53. 1-8 are RFC 2132; 9 is RFC 3203, 10-18 the leasequery/TLS extensions."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8
    FORCERENEW = 9
    LEASEQUERY = 10
    LEASEUNASSIGNED = 11
    LEASEUNKNOWN = 12
    LEASEACTIVE = 13
    BULKLEASEQUERY = 14
    LEASEQUERYDONE = 15
    ACTIVELEASEQUERY = 16
    LEASEQUERYSTATUS = 17
    TLS = 18


class ClientArch(IntEnum):
    """Option 93 values from the IANA "Processor Architecture Types" registry (RFC 4578).

    Quirk: RFC 4578's text has 7 as "EFI BC" and 9 as "EFI x86-64"; an erratum and the
    registry swap them (7 = x64 UEFI, 9 = EBC), and x64 UEFI firmware sends 7. Tools that
    follow the RFC text (dnsmasq's "X86-64_EFI" is 9) and a few firmware builds still use
    9 for x86-64, so boot decisions should treat 7 and 9 alike.
    """

    X86_BIOS = 0
    NEC_PC98 = 1
    ITANIUM = 2
    DEC_ALPHA = 3
    ARC_X86 = 4
    INTEL_LEAN_CLIENT = 5
    X86_UEFI = 6
    X64_UEFI = 7
    EFI_XSCALE = 8
    EBC = 9
    ARM32_UEFI = 10
    ARM64_UEFI = 11
    X86_UEFI_HTTP = 15
    X64_UEFI_HTTP = 16
    EBC_HTTP = 17
    ARM32_UEFI_HTTP = 18
    ARM64_UEFI_HTTP = 19
    X86_BIOS_HTTP = 20
    ARM32_UBOOT = 21
    ARM64_UBOOT = 22
    RISCV32_UEFI = 25
    RISCV64_UEFI = 27
    RISCV64_UEFI_HTTP = 28


# Sub-options of 43 that PXE clients read (PXE 2.1 specification, table 2-1).
PXE_DISCOVERY_CONTROL = 6
PXE_BOOT_SERVERS = 8
PXE_BOOT_MENU = 9
PXE_MENU_PROMPT = 10
PXE_BOOT_ITEM = 71

# Sub-options of 175, iPXE's own encapsulated space. 0x10-0x4f are "feature" markers that
# iPXE sends in requests (one byte, usually 1) to say what the build supports.
IPXE_PRIORITY = 1
IPXE_KEEP_SAN = 8
IPXE_SKIP_SAN_BOOT = 9
IPXE_FEATURE_PXE_EXT = 0x10
IPXE_FEATURE_ISCSI = 0x11
IPXE_FEATURE_AOE = 0x12
IPXE_FEATURE_HTTP = 0x13
IPXE_FEATURE_HTTPS = 0x14
IPXE_FEATURE_TFTP = 0x15
IPXE_FEATURE_DNS = 0x17
IPXE_FEATURE_BZIMAGE = 0x18
IPXE_FEATURE_EFI = 0x24
IPXE_NO_PXEDHCP = 176  # non-zero: do not wait for a proxyDHCP offer
IPXE_BUS_ID = 177
IPXE_VERSION = 235

# Sub-options of 82 (RFC 3046).
RELAY_CIRCUIT_ID = 1
RELAY_REMOTE_ID = 2


class OptionField(Generic[T]):
    """One option: its code, a name for messages, and how its bytes map to a ``T``."""

    __slots__ = ("_decode", "_describe", "_encode", "code", "name")

    def __init__(
        self,
        code: int,
        name: str,
        decode: Callable[[bytes], T],
        encode: Callable[[T], bytes],
        describe: Callable[[T], str],
    ) -> None:
        self.code = code
        self.name = name
        self._decode = decode
        self._encode = encode
        self._describe = describe

    def __repr__(self) -> str:
        return f"<OptionField {self.code} ({self.name})>"

    def decode(self, raw: bytes) -> T:
        """The value of this option's bytes; `DhcpParseError` if they are malformed."""
        try:
            return self._decode(raw)
        except ValueError as exc:
            raise DhcpParseError(f"malformed DHCP option {self.code} ({self.name}): {exc}") from exc

    def get(self, options: Mapping[int, bytes]) -> T | None:
        """The decoded value if the option is present, else None."""
        raw = options.get(self.code)
        return None if raw is None else self.decode(raw)

    def encode(self, value: T) -> bytes:
        """The option's bytes for ``value``; `ValueError` naming the option if it cannot be."""
        try:
            return self._encode(value)
        except (ValueError, OverflowError, TypeError, struct.error) as exc:
            raise ValueError(f"cannot encode DHCP option {self.code} ({self.name}): {exc}") from exc

    def item(self, value: T) -> tuple[int, bytes]:
        """``(code, bytes)``, ready for a `DhcpMessage.options` dict."""
        return self.code, self.encode(value)

    def describe(self, raw: bytes) -> str:
        """One line for people; never raises, so a bad option still shows in a dump."""
        try:
            value = self._decode(raw)
        except ValueError as exc:
            return f"MALFORMED ({exc}): {raw.hex()}"
        return self._describe(value)


def _decode_message_type(raw: bytes) -> MessageType:
    code = v.decode_u8(raw)
    try:
        return MessageType(code)
    except ValueError:
        raise ValueError(f"unknown message type {code}") from None


def _format_message_type(kind: MessageType) -> str:
    return f"{kind.name} ({kind.value})"


_ARCH_NAMES = {arch.value: arch.name for arch in ClientArch}


def _format_arch(arches: tuple[int, ...]) -> str:
    return ", ".join(f"{a} ({_ARCH_NAMES[a]})" if a in _ARCH_NAMES else str(a) for a in arches)


def _text(code: int, name: str) -> OptionField[str]:
    return OptionField(code, name, v.decode_text, v.encode_text, repr)


def _ipv4(code: int, name: str) -> OptionField[int]:
    return OptionField(code, name, v.decode_ipv4, v.encode_ipv4, v.format_ipv4)


def _ipv4_list(code: int, name: str) -> OptionField[tuple[int, ...]]:
    return OptionField(code, name, v.decode_ipv4_list, v.encode_ipv4_list, v.format_ipv4_list)


def _u32(code: int, name: str) -> OptionField[int]:
    return OptionField(code, name, v.decode_u32, v.encode_u32, str)


SUBNET_MASK = _ipv4(1, "subnet mask")
ROUTERS = _ipv4_list(3, "routers")
DNS_SERVERS = _ipv4_list(6, "domain name servers")
HOSTNAME = _text(12, "host name")
DOMAIN_NAME = _text(15, "domain name")
BROADCAST_ADDRESS = _ipv4(28, "broadcast address")
# 43 is opaque vendor data in RFC 2132; this field reads it the PXE way, as sub-options.
# A non-PXE vendor's blob may not parse: use msg.options[43] for those.
VENDOR_SPECIFIC: OptionField[Mapping[int, bytes]] = OptionField(
    43,
    "vendor-specific information",
    v.decode_suboptions,
    v.encode_pxe_vendor_options,
    v.format_suboptions,
)
REQUESTED_IP = _ipv4(50, "requested IP address")
LEASE_TIME = _u32(51, "IP address lease time")
MESSAGE_TYPE: OptionField[MessageType] = OptionField(
    53, "DHCP message type", _decode_message_type, v.encode_u8, _format_message_type
)
SERVER_ID = _ipv4(54, "server identifier")
PARAMETER_REQUEST_LIST = OptionField(
    55, "parameter request list", v.decode_u8_list, v.encode_u8_list, v.format_int_list
)
# RFC 2132 9.10: at least 576; clamp when using it, a client may send less.
MAX_MESSAGE_SIZE = OptionField(57, "maximum DHCP message size", v.decode_u16, v.encode_u16, str)
RENEWAL_TIME = _u32(58, "renewal (T1) time")
REBINDING_TIME = _u32(59, "rebinding (T2) time")
VENDOR_CLASS_ID = _text(60, "vendor class identifier")
CLIENT_ID = OptionField(
    61, "client identifier", v.decode_client_id, v.encode_client_id, v.format_client_id
)
TFTP_SERVER_NAME = _text(66, "TFTP server name")
BOOTFILE_NAME = _text(67, "bootfile name")
USER_CLASS = OptionField(
    77, "user class", v.decode_user_class, v.encode_user_class, v.format_user_class
)
# RFC 3046: a server copies 82 into its reply byte for byte; read msg.options[82] for that.
RELAY_AGENT_INFO: OptionField[Mapping[int, bytes]] = OptionField(
    82,
    "relay agent information",
    v.decode_relay_suboptions,
    v.encode_relay_suboptions,
    v.format_suboptions,
)
CLIENT_ARCH = OptionField(
    93, "client architecture", v.decode_u16_list, v.encode_u16_list, _format_arch
)
CLIENT_NDI = OptionField(
    94,
    "client network interface identifier",
    v.decode_client_ndi,
    v.encode_client_ndi,
    v.format_client_ndi,
)
CLIENT_MACHINE_ID = OptionField(
    97,
    "client machine identifier",
    v.decode_client_machine_id,
    v.encode_client_machine_id,
    v.format_client_machine_id,
)
DOMAIN_SEARCH = OptionField(
    119, "domain search", decode_domain_search, encode_domain_search, format_domain_search
)
CLASSLESS_ROUTES: OptionField[tuple[ClasslessRoute, ...]] = OptionField(
    121,
    "classless static routes",
    decode_classless_routes,
    encode_classless_routes,
    format_classless_routes,
)
# iPXE's sub-options are TLVs like 43's; iPXE sends them without an End, and tolerates one.
IPXE_ENCAP: OptionField[Mapping[int, bytes]] = OptionField(
    175, "iPXE encapsulated options", v.decode_suboptions, v.encode_suboptions, v.format_suboptions
)

OPTION_FIELDS: Mapping[int, OptionField[Any]] = {
    field.code: field
    for field in (
        SUBNET_MASK, ROUTERS, DNS_SERVERS, HOSTNAME, DOMAIN_NAME, BROADCAST_ADDRESS,
        VENDOR_SPECIFIC, REQUESTED_IP, LEASE_TIME, MESSAGE_TYPE, SERVER_ID,
        PARAMETER_REQUEST_LIST, MAX_MESSAGE_SIZE, RENEWAL_TIME, REBINDING_TIME,
        VENDOR_CLASS_ID, CLIENT_ID, TFTP_SERVER_NAME, BOOTFILE_NAME, USER_CLASS,
        RELAY_AGENT_INFO, CLIENT_ARCH, CLIENT_NDI, CLIENT_MACHINE_ID, DOMAIN_SEARCH,
        CLASSLESS_ROUTES, IPXE_ENCAP,
    )
}  # fmt: skip
