"""Reply templates: the options of an OFFER or ACK encoded once, then reused for every client.

Why: under load almost every reply is an OFFER or ACK of an address on one subnet, and every
client that asks for the same options (55) in the same order gets the same option bytes;
only the header fields and the two options echoed from its request, the client identifier
(61) and the relay agent information (82), differ. Building a `DhcpMessage`, ordering its
options and encoding them cost about half of a decision, so `build_reply` does that once
per (subnet, reply type, lease time, option 55) and a reply is then one ``struct`` pack of
the fixed header and a join of a few byte strings.

`build_reply` (replies.py) stays the reference: a reply from a template is byte for byte what
it would produce (a property test compares the two over generated requests and subnets), and
a template declines, so that `build_reply` does the work, whenever the two could differ:
an echoed option over 255 bytes (split in pieces, RFC 3396) or a reply larger than the
client accepts (57), which `build_reply` trims. Replies with boot options are not templated:
their options depend on the client (an iPXE script URL names its MAC).
"""

from __future__ import annotations

from collections.abc import Mapping

from edgebox.wire.dhcp.codec import HEADER, MAGIC_COOKIE, MIN_PACKET_SIZE, encode_option
from edgebox.wire.dhcp.message import BOOTREPLY, DhcpMessage
from edgebox.wire.dhcp.options import MESSAGE_TYPE, SERVER_ID, MessageType
from edgebox.wire.dhcp.replies import (
    CLIENT_ID_OPTION,
    RELAY_AGENT_OPTION,
    max_payload,
    ordered_by_request,
    requested_options,
)
from edgebox.wire.dhcp.server_config import SubnetConfig

_ECHOED = (CLIENT_ID_OPTION, RELAY_AGENT_OPTION)
_END = b"\xff"
PARAMETER_REQUEST_LIST_CODE = 55


class ReplyTemplate:
    """The encoded options of one kind of reply, and how to put a client's reply around them."""

    __slots__ = ("body", "head")

    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head  # 53, 54 and the lease times
        self.body = body  # the subnet's options, in the order of the client's 55

    @classmethod
    def build(
        cls,
        reply_type: MessageType,
        server_id: int,
        lease: Mapping[int, bytes],
        body: Mapping[int, bytes],
        requested: tuple[int, ...],
    ) -> ReplyTemplate:
        """The options `build_reply` would write for these fields, in its order."""
        head = {
            MESSAGE_TYPE.code: MESSAGE_TYPE.encode(reply_type),
            SERVER_ID.code: SERVER_ID.encode(server_id),
            **lease,
        }
        clash = (head.keys() | set(_ECHOED)) & body.keys()
        if clash or set(_ECHOED) & head.keys():
            # build_reply would let a body option overwrite a head option in place; no
            # subnet defines those codes, so refuse rather than copy that subtlety here.
            raise ValueError(f"options {sorted(clash)} belong in the head or are echoed")
        return cls(
            b"".join(encode_option(code, value) for code, value in head.items()),
            b"".join(
                encode_option(code, value)
                for code, value in ordered_by_request(body, requested).items()
            ),
        )

    def render(self, request: DhcpMessage, flags: int, ciaddr: int, yiaddr: int) -> bytes | None:
        """The reply to ``request``; None where `build_reply` must make it (see the module
        docstring). ``siaddr`` and ``file`` are empty: templated replies carry no boot."""
        options = request.options
        client_id = options.get(CLIENT_ID_OPTION)
        relay = options.get(RELAY_AGENT_OPTION)
        parts = [
            HEADER.pack(
                BOOTREPLY, request.htype, request.hlen, 0, request.xid, 0, flags,
                ciaddr, yiaddr, 0, request.giaddr, request.chaddr, b"", b"", MAGIC_COOKIE,
            ),
            self.head,
        ]  # fmt: skip
        if client_id is not None:  # RFC 6842: MUST echo option 61
            if len(client_id) > 255:
                return None
            parts.append(bytes((CLIENT_ID_OPTION, len(client_id))) + client_id)
        parts.append(self.body)
        if relay is not None:  # RFC 3046 2.2: copied verbatim, last
            if len(relay) > 255:
                return None
            parts.append(bytes((RELAY_AGENT_OPTION, len(relay))) + relay)
        parts.append(_END)
        packet = b"".join(parts)
        size = len(packet)
        if size < MIN_PACKET_SIZE:
            return packet + bytes(MIN_PACKET_SIZE - size)
        return packet if size <= max_payload(request) else None


class ReplyTemplates:
    """Templates by (subnet id, reply type, lease time, option 55 as sent).

    Bounded: a client can send any option 55, so past ``limit`` kinds the cache starts over
    (real networks have a handful: one per client software).
    """

    __slots__ = ("_cache", "limit")

    def __init__(self, limit: int = 256) -> None:
        self._cache: dict[tuple[str, MessageType, int, bytes | None], ReplyTemplate] = {}
        self.limit = limit

    def get(
        self,
        request: DhcpMessage,
        subnet: SubnetConfig,
        reply_type: MessageType,
        lease_time: int,
        *,
        lease: Mapping[int, bytes],
        body: Mapping[int, bytes],
    ) -> ReplyTemplate:
        """The template for this reply. The caller guarantees that ``lease`` and ``body`` are
        fixed by the subnet and ``lease_time`` (they are the subnet's configured options),
        which is what makes the key sufficient; the server id is the subnet's."""
        prl = request.options.get(PARAMETER_REQUEST_LIST_CODE)
        key = (subnet.id, reply_type, lease_time, prl)
        template = self._cache.get(key)
        if template is None:
            if len(self._cache) >= self.limit:
                self._cache.clear()
            template = ReplyTemplate.build(
                reply_type, subnet.server_address, lease, body, requested_options(request)
            )
            self._cache[key] = template
        return template
