"""Reply templates against the general encoder: the same bytes, or a refusal, never a difference.

Hypothesis generates subnets (every option a subnet can carry, long ones included), requests
(any option 55, client identifiers and relay information of any length, option 57 valid,
too small or malformed, Ethernet or other hardware types) and the reply's fields; whenever
`ReplyTemplate.render` returns bytes they must equal `build_reply`'s, and it may return None
only where the module says: an echoed option over 255 bytes or a reply over the client's size.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgebox.wire.dhcp import DhcpMessage, MessageType, encode_message, parse_message
from edgebox.wire.dhcp.codec import MIN_PACKET_SIZE
from edgebox.wire.dhcp.replies import ReplyFields, build_reply, max_payload, subnet_options
from edgebox.wire.dhcp.reply_template import ReplyTemplate, ReplyTemplates
from edgebox.wire.dhcp.served import cached_lease_options
from edgebox.wire.dhcp.server_config import AddressRange, StaticRoute, SubnetConfig

NETWORK = 0x0A000000  # 10.0.0.0/16
ADDRESS = st.integers(0, 2**32 - 1)
LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=40)
DOMAIN = st.lists(LABEL, min_size=1, max_size=3).map(".".join)


@st.composite
def subnets(draw: st.DrawFn) -> SubnetConfig:
    routes = draw(st.lists(st.integers(16, 24), max_size=4))
    return SubnetConfig(
        id=draw(st.sampled_from(["10.0.0.0/16", "lan"])),
        network=NETWORK,
        prefix=16,
        ranges=(AddressRange(NETWORK + 100, NETWORK + 200),),
        router=draw(st.none() | st.just(NETWORK + 1)),
        dns=tuple(draw(st.lists(ADDRESS, max_size=4))),
        ntp=tuple(draw(st.lists(ADDRESS, max_size=3))),
        domain_name=draw(st.just("") | DOMAIN),
        domain_search=tuple(draw(st.lists(DOMAIN, max_size=8))),
        mtu=draw(st.none() | st.integers(68, 9000)),
        lease_time=draw(st.integers(60, 2**31)),
        routes=tuple(StaticRoute(0xC0A80000, p, NETWORK + 254) for p in sorted(set(routes))),
        server_address=NETWORK + 1,
    )


def _echoed(code: int) -> st.SearchStrategy[dict[int, bytes]]:
    """An option to echo, usually short, sometimes over 255 bytes (RFC 3396 split)."""
    value = st.binary(min_size=1, max_size=20) | st.binary(min_size=250, max_size=600)
    return st.dictionaries(st.just(code), value, max_size=1)


@st.composite
def requests(draw: st.DrawFn) -> DhcpMessage:
    hlen = draw(st.sampled_from([6, 6, 6, 0, 16]))
    options: dict[int, bytes] = {53: bytes([draw(st.sampled_from([1, 3]))])}
    options |= draw(st.dictionaries(st.just(55), st.binary(min_size=0, max_size=40), max_size=1))
    options |= draw(_echoed(61))
    size = st.integers(0, 2000).map(lambda n: n.to_bytes(2, "big")) | st.binary(max_size=3)
    options |= draw(st.dictionaries(st.just(57), size, max_size=1))
    others = st.sampled_from([12, 50, 54, 60, 81])
    options |= draw(st.dictionaries(others, st.binary(min_size=1, max_size=30)))
    options |= draw(_echoed(82))
    msg = DhcpMessage(
        op=1,
        htype=draw(st.sampled_from([1, 6])),
        hlen=hlen,
        hops=draw(st.integers(0, 3)),
        xid=draw(st.integers(0, 2**32 - 1)),
        secs=draw(st.integers(0, 65535)),
        flags=draw(st.sampled_from([0, 0x8000])),
        ciaddr=draw(st.sampled_from([0, NETWORK + 150])),
        giaddr=draw(st.sampled_from([0, 0x0A140001])),
        chaddr=draw(st.binary(min_size=hlen, max_size=hlen)),
        options=options,
    )
    return parse_message(encode_message(msg))  # what the server sees: bytes parsed


@settings(max_examples=400, deadline=None)
@given(
    subnet=subnets(),
    request=requests(),
    reply_type=st.sampled_from([MessageType.OFFER, MessageType.ACK]),
    flags=st.sampled_from([0, 0x8000]),
    ciaddr=st.sampled_from([0, NETWORK + 150]),
    yiaddr=st.integers(NETWORK + 100, NETWORK + 200),
)
def test_a_template_reply_is_byte_for_byte_the_general_one(
    subnet: SubnetConfig,
    request: DhcpMessage,
    reply_type: MessageType,
    flags: int,
    ciaddr: int,
    yiaddr: int,
) -> None:
    body, lease = subnet_options(subnet), cached_lease_options(subnet.lease_time)
    fields = ReplyFields(
        reply_type, subnet.server_address, flags, ciaddr, yiaddr, lease=lease, body=body
    )
    general = build_reply(request, fields)
    template = ReplyTemplates().get(
        request, subnet, reply_type, subnet.lease_time, lease=lease, body=body
    )
    fast = template.render(request, flags, ciaddr, yiaddr)
    if fast is not None:
        assert fast == general
        return
    # Refused: only for a long echoed option, or a reply the general encoder had to trim.
    echoed = [request.options[code] for code in (61, 82) if code in request.options]
    untrimmed = 240 + len(template.head) + len(template.body) + sum(2 + len(e) for e in echoed)
    long_echo = any(len(value) > 255 for value in echoed)
    assert long_echo or untrimmed + 1 > max(max_payload(request), MIN_PACKET_SIZE)


def test_the_common_reply_is_templated_and_padded_to_the_bootp_minimum() -> None:
    subnet = SubnetConfig(
        id="s", network=NETWORK, prefix=16, router=NETWORK + 1, server_address=NETWORK + 1
    )
    request = DhcpMessage(
        op=1, xid=7, chaddr=b"\x02" * 6, giaddr=0x0A140001, options={53: b"\x01", 55: b"\x01\x03"}
    )
    body, lease = subnet_options(subnet), cached_lease_options(3600)
    template = ReplyTemplate.build(MessageType.OFFER, subnet.server_address, lease, body, (1, 3))
    packet = template.render(request, 0, 0, NETWORK + 100)
    assert packet is not None and len(packet) == 300
    offer = parse_message(packet)
    assert (offer.xid, offer.yiaddr, offer.giaddr) == (7, NETWORK + 100, 0x0A140001)
    assert list(offer.options) == [53, 54, 51, 58, 59, 1, 3, 28]


def test_the_template_cache_is_keyed_by_the_request_order_and_bounded() -> None:
    subnet = SubnetConfig(id="s", network=NETWORK, prefix=16, server_address=NETWORK + 1)
    body, lease = subnet_options(subnet), cached_lease_options(600)
    cache = ReplyTemplates(limit=2)

    def get(opt55: bytes) -> ReplyTemplate:
        request = DhcpMessage(op=1, xid=1, chaddr=b"\x02" * 6, options={55: opt55})
        return cache.get(request, subnet, MessageType.ACK, 600, lease=lease, body=body)

    first = get(b"\x01\x1c")
    assert get(b"\x01\x1c") is first
    assert get(b"\x1c\x01").body != first.body  # another order, another template
    get(b"\x1c")  # a third kind: the cache starts over
    assert get(b"\x01\x1c") is not first
