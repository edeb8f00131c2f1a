"""DHCPv4 codec (RFC 2131/2132): packets <-> `DhcpMessage`, typed options on demand.

How it works: `parse_message` unpacks the fixed 240-byte header with one precompiled
``struct`` and slices the option TLVs into an ordered ``{code: bytes}`` map (RFC 3396 long
options joined, option overload into sname/file honoured). Nothing is decoded until asked:
``msg.get(CLIENT_ARCH)`` runs that option's decoder, so a server pays only for the options
it reads, and options it must echo (82) stay byte-exact. `encode_message` does the reverse.
Malformed input raises `DhcpParseError` (a `ValueError`) and nothing else.

Why struct and not scapy: scapy takes ~60 µs to dissect a DHCP payload (~140 µs for a
whole Ethernet frame) and 0.6-1 s to import; a parse here is ~3 µs. The DHCP path shares
one event loop with everything else, on switch-class CPUs, during bursts of hundreds of
PXE clients, so a 20-50x cost per packet is not free; and `wire` must stay
standard-library only. scapy remains a test oracle in the unit tests.
"""

from edgebox.wire.dhcp.classless_routes import ClasslessRoute
from edgebox.wire.dhcp.codec import MAGIC_COOKIE, MIN_PACKET_SIZE, encode_message, parse_message
from edgebox.wire.dhcp.errors import DhcpParseError
from edgebox.wire.dhcp.message import (
    BOOTREPLY,
    BOOTREQUEST,
    FLAG_BROADCAST,
    HTYPE_ETHERNET,
    DhcpMessage,
)
from edgebox.wire.dhcp.options import (
    BOOTFILE_NAME,
    BROADCAST_ADDRESS,
    CLASSLESS_ROUTES,
    CLIENT_ARCH,
    CLIENT_ID,
    CLIENT_MACHINE_ID,
    CLIENT_NDI,
    DNS_SERVERS,
    DOMAIN_NAME,
    DOMAIN_SEARCH,
    HOSTNAME,
    IPXE_ENCAP,
    IPXE_NO_PXEDHCP,
    LEASE_TIME,
    MAX_MESSAGE_SIZE,
    MESSAGE_TYPE,
    OPTION_FIELDS,
    PARAMETER_REQUEST_LIST,
    REBINDING_TIME,
    RELAY_AGENT_INFO,
    RENEWAL_TIME,
    REQUESTED_IP,
    ROUTERS,
    SERVER_ID,
    SUBNET_MASK,
    TFTP_SERVER_NAME,
    USER_CLASS,
    VENDOR_CLASS_ID,
    VENDOR_SPECIFIC,
    ClientArch,
    MessageType,
    OptionField,
)
from edgebox.wire.dhcp.values import (
    ClientId,
    ClientMachineId,
    ClientNdi,
    format_ipv4,
    parse_ipv4,
)

__all__ = [
    "BOOTFILE_NAME",
    "BOOTREPLY",
    "BOOTREQUEST",
    "BROADCAST_ADDRESS",
    "CLASSLESS_ROUTES",
    "CLIENT_ARCH",
    "CLIENT_ID",
    "CLIENT_MACHINE_ID",
    "CLIENT_NDI",
    "DNS_SERVERS",
    "DOMAIN_NAME",
    "DOMAIN_SEARCH",
    "FLAG_BROADCAST",
    "HOSTNAME",
    "HTYPE_ETHERNET",
    "IPXE_ENCAP",
    "IPXE_NO_PXEDHCP",
    "LEASE_TIME",
    "MAGIC_COOKIE",
    "MAX_MESSAGE_SIZE",
    "MESSAGE_TYPE",
    "MIN_PACKET_SIZE",
    "OPTION_FIELDS",
    "PARAMETER_REQUEST_LIST",
    "REBINDING_TIME",
    "RELAY_AGENT_INFO",
    "RENEWAL_TIME",
    "REQUESTED_IP",
    "ROUTERS",
    "SERVER_ID",
    "SUBNET_MASK",
    "TFTP_SERVER_NAME",
    "USER_CLASS",
    "VENDOR_CLASS_ID",
    "VENDOR_SPECIFIC",
    "ClasslessRoute",
    "ClientArch",
    "ClientId",
    "ClientMachineId",
    "ClientNdi",
    "DhcpMessage",
    "DhcpParseError",
    "MessageType",
    "OptionField",
    "encode_message",
    "format_ipv4",
    "parse_ipv4",
    "parse_message",
]
