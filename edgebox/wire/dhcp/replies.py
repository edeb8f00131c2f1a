"""Building replies: the options a subnet gives, boot options, their order, and the size.

Order: 53, 54 and the lease times first (where servers customarily put them), the client
identifier echoed (RFC 6842), then the other options in the order of the client's parameter
request list (55) and the rest after them, and relay agent information (82) last, copied
byte for byte (RFC 3046 2.2). Option 55 only orders: every option the server has is sent.

Size: a client accepts a DHCP message of at most option 57's value (never below 576, RFC
2132 9.10) counting the IP and UDP headers. A reply that would be larger loses its optional
options from the end (unrequested ones go first) until it fits; the address, server id,
lease times, subnet mask, boot options and option 82 are never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from edgebox.wire.dhcp.boot import HTTP_CLIENT, PXE_CLIENT, BootChoice, BootKind, Transport
from edgebox.wire.dhcp.classless_routes import ClasslessRoute
from edgebox.wire.dhcp.codec import encode_message
from edgebox.wire.dhcp.errors import DhcpParseError
from edgebox.wire.dhcp.message import BOOTREPLY, DhcpMessage
from edgebox.wire.dhcp.options import (
    BOOTFILE_NAME,
    BROADCAST_ADDRESS,
    CLASSLESS_ROUTES,
    DNS_SERVERS,
    DOMAIN_NAME,
    DOMAIN_SEARCH,
    IPXE_ENCAP,
    IPXE_NO_PXEDHCP,
    LEASE_TIME,
    MAX_MESSAGE_SIZE,
    MESSAGE_TYPE,
    PARAMETER_REQUEST_LIST,
    PXE_BOOT_ITEM,
    PXE_DISCOVERY_CONTROL,
    REBINDING_TIME,
    RENEWAL_TIME,
    ROUTERS,
    SERVER_ID,
    SUBNET_MASK,
    TFTP_SERVER_NAME,
    VENDOR_CLASS_ID,
    VENDOR_SPECIFIC,
    MessageType,
)
from edgebox.wire.dhcp.server_config import BootFiles, SubnetConfig
from edgebox.wire.dhcp.values import encode_ipv4_list, encode_u16, format_ipv4

# Options the codec has no `OptionField` for (edgebox/wire/dhcp/options.py is not ours).
MTU_OPTION = 26  # interface MTU, u16 (RFC 2132 5.1)
NTP_OPTION = 42  # NTP servers, address list (RFC 2132 8.3)
CLIENT_ID_OPTION = 61
RELAY_AGENT_OPTION = 82
CLIENT_UUID_OPTION = 97
_KEEP = frozenset((1, 43, 51, 53, 54, 58, 59, 60, 61, 66, 67, 82, 97, 175))

MIN_MESSAGE_SIZE = 576  # RFC 2132 9.10
IP_UDP_HEADERS = 28
_FILE_FIELD = 128
# PXE discovery control bit 3: "use the boot file name in this offer, skip discovery".
PXE_USE_BOOT_FILE = b"\x08"


def subnet_options(subnet: SubnetConfig) -> dict[int, bytes]:
    """What every client of ``subnet`` gets, encoded once when the server is built."""
    opts = {SUBNET_MASK.code: SUBNET_MASK.encode(subnet.mask)}
    if subnet.router is not None:
        opts[ROUTERS.code] = ROUTERS.encode((subnet.router,))
    if subnet.dns:
        opts[DNS_SERVERS.code] = DNS_SERVERS.encode(subnet.dns)
    if subnet.domain_name:
        opts[DOMAIN_NAME.code] = DOMAIN_NAME.encode(subnet.domain_name)
    if subnet.mtu is not None:
        opts[MTU_OPTION] = encode_u16(subnet.mtu)
    opts[BROADCAST_ADDRESS.code] = BROADCAST_ADDRESS.encode(subnet.broadcast)
    if subnet.ntp:
        opts[NTP_OPTION] = encode_ipv4_list(subnet.ntp)
    if subnet.domain_search:
        opts[DOMAIN_SEARCH.code] = DOMAIN_SEARCH.encode(subnet.domain_search)
    if subnet.routes:
        routes = [ClasslessRoute(r.network, r.prefix, r.gateway) for r in subnet.routes]
        if subnet.router is not None and not any(r.prefix_len == 0 for r in routes):
            # RFC 3442: a client that accepts 121 ignores option 3, so the default route
            # must be in 121 too. Option 3 stays for clients without 121 (the RFC says a
            # server SHOULD NOT send both to a client that asked for 121; those clients
            # ignore option 3 anyway, and dnsmasq and others send both).
            routes.append(ClasslessRoute(0, 0, subnet.router))
        opts[CLASSLESS_ROUTES.code] = CLASSLESS_ROUTES.encode(tuple(routes))
    return opts


def lease_options(seconds: int) -> dict[int, bytes]:
    """51, and T1/T2 at 0.5 and 0.875 of the lease (RFC 2131 4.4.5)."""
    return {
        LEASE_TIME.code: LEASE_TIME.encode(seconds),
        RENEWAL_TIME.code: RENEWAL_TIME.encode(seconds // 2),
        REBINDING_TIME.code: REBINDING_TIME.encode(seconds * 7 // 8),
    }


@dataclass(frozen=True, slots=True)
class BootFields:
    siaddr: int
    file: bytes
    options: dict[int, bytes]


def boot_fields(
    choice: BootChoice, boot: BootFiles, request: DhcpMessage, *, proxy: bool
) -> BootFields:
    """siaddr, 'file' and the boot options for ``choice``."""
    opts: dict[int, bytes] = {}
    siaddr = 0
    if choice.transport is Transport.TFTP:
        # Firmware differs in which it reads: siaddr (PXE spec) or option 66; give both.
        siaddr = boot.tftp_server
        opts[TFTP_SERVER_NAME.code] = TFTP_SERVER_NAME.encode(format_ipv4(boot.tftp_server))
    if proxy:
        # iPXE drops a ProxyDHCPACK that lacks "PXE options", which it defines as a boot menu
        # or a non-zero siaddr together with a boot file name, even when the boot file is an
        # http:// URL (seen with Debian's iPXE 1.0.0+git-20190125: it retransmits to 4011
        # and ends with "Nothing to boot"). So a proxy reply always names us in siaddr.
        siaddr = boot.tftp_server
        # A proxy offer is recognised by option 60 PXEClient (or HTTPClient) and no yiaddr.
        vendor = choice.vendor_class or PXE_CLIENT
        opts[VENDOR_CLASS_ID.code] = VENDOR_CLASS_ID.encode(vendor)
        if vendor == PXE_CLIENT:
            opts[VENDOR_SPECIFIC.code] = VENDOR_SPECIFIC.encode(_pxe_vendor_options(request))
    elif choice.vendor_class == HTTP_CLIENT:
        # UEFI HTTP boot drops offers without option 60 "HTTPClient".
        opts[VENDOR_CLASS_ID.code] = VENDOR_CLASS_ID.encode(HTTP_CLIENT)
    opts[BOOTFILE_NAME.code] = BOOTFILE_NAME.encode(choice.file)
    if choice.kind is BootKind.IPXE:
        # no-pxedhcp: otherwise iPXE waits 1-2 s for proxyDHCP offers after every DHCP.
        opts[IPXE_ENCAP.code] = IPXE_ENCAP.encode({IPXE_NO_PXEDHCP: b"\x01"})
    if proxy and CLIENT_UUID_OPTION in request.options:
        # PXE 2.1: a proxy or boot server echoes the client's UUID/GUID option.
        opts[CLIENT_UUID_OPTION] = request.options[CLIENT_UUID_OPTION]
    file = choice.file.encode()
    # A long URL goes in option 67 only; the 'file' field holds at most 128 bytes.
    return BootFields(siaddr, file if len(file) <= _FILE_FIELD else b"", opts)


def _pxe_vendor_options(request: DhcpMessage) -> dict[int, bytes]:
    subs = {PXE_DISCOVERY_CONTROL: PXE_USE_BOOT_FILE}
    try:
        asked = request.get(VENDOR_SPECIFIC)
    except DhcpParseError:
        asked = None
    if asked is not None and PXE_BOOT_ITEM in asked:
        # A boot-server request (port 4011) names a boot item; the ACK echoes it.
        subs[PXE_BOOT_ITEM] = asked[PXE_BOOT_ITEM]
    return subs


@dataclass(frozen=True, slots=True)
class ReplyFields:
    """The parts of a reply that differ from message to message."""

    reply_type: MessageType
    server_id: int
    flags: int
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    file: bytes = b""
    lease: Mapping[int, bytes] | None = None  # lease_options(...)
    body: Mapping[int, bytes] | None = None  # subnet and boot options, ordered by 55


def build_reply(request: DhcpMessage, fields: ReplyFields) -> bytes:
    """The reply's bytes, trimmed to the client's maximum message size.

    The general encoder, and the reference for `ReplyTemplate` (reply_template.py), which
    makes the common OFFERs and ACKs faster and byte for byte the same.
    """
    head = {
        MESSAGE_TYPE.code: MESSAGE_TYPE.encode(fields.reply_type),
        SERVER_ID.code: SERVER_ID.encode(fields.server_id),
    }
    if fields.lease:
        head.update(fields.lease)
    client_id = request.options.get(CLIENT_ID_OPTION)
    if client_id is not None:
        head[CLIENT_ID_OPTION] = client_id  # RFC 6842: MUST echo option 61
    body = ordered_by_request(fields.body or {}, requested_options(request))
    relay = request.options.get(RELAY_AGENT_OPTION)
    reply = DhcpMessage(
        op=BOOTREPLY,
        htype=request.htype,
        hlen=request.hlen,
        xid=request.xid,
        flags=fields.flags,
        ciaddr=fields.ciaddr,
        yiaddr=fields.yiaddr,
        siaddr=fields.siaddr,
        giaddr=request.giaddr,
        chaddr=request.chaddr,
        file=fields.file,
        options=_joined(head, body, relay),
    )
    packet = encode_message(reply)
    limit = max_payload(request)
    while len(packet) > limit:
        droppable = [code for code in body if code not in _KEEP]
        if not droppable:
            break  # send it whole: dropping essentials would make it useless anyway
        del body[droppable[-1]]
        reply = replace(reply, options=_joined(head, body, relay))
        packet = encode_message(reply)
    return packet


def _joined(
    head: dict[int, bytes], body: dict[int, bytes], relay: bytes | None
) -> dict[int, bytes]:
    options = {**head, **body}
    if relay is not None:
        options[RELAY_AGENT_OPTION] = relay  # RFC 3046 2.2: copied verbatim, last
    return options


def requested_options(request: DhcpMessage) -> tuple[int, ...]:
    """Option 55, the order the client wants options in; () if absent or malformed."""
    try:
        return request.get(PARAMETER_REQUEST_LIST) or ()
    except DhcpParseError:
        return ()


def ordered_by_request(body: Mapping[int, bytes], requested: tuple[int, ...]) -> dict[int, bytes]:
    """``body`` with the requested options first, in the order asked, then the others."""
    ordered = {code: body[code] for code in requested if code in body}
    for code, value in body.items():
        ordered.setdefault(code, value)
    return ordered


def max_payload(request: DhcpMessage) -> int:
    """The largest DHCP message (UDP payload) the client accepts (option 57, RFC 2132 9.10)."""
    raw = request.options.get(MAX_MESSAGE_SIZE.code)
    if raw is None:
        return MIN_MESSAGE_SIZE - IP_UDP_HEADERS
    try:
        size = MAX_MESSAGE_SIZE.decode(raw)
    except DhcpParseError:
        size = MIN_MESSAGE_SIZE
    return max(size, MIN_MESSAGE_SIZE) - IP_UDP_HEADERS
