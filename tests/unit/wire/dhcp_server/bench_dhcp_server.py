"""Micro-benchmark of the DHCP server core (run by hand; not a test).

    python tests/unit/wire/dhcp_server/bench_dhcp_server.py [--clients 10000]

A /16 with about 61k addresses in its range and 10k active bindings loaded. Times the
decision for DISCOVER -> OFFER (new clients), SELECTING REQUEST -> ACK and RENEWING
REQUEST -> ACK, each including `LeaseTable.apply` of the change as the adapter does it,
and once more including `parse_message` of the request bytes. Prints µs per decision.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from edgebox.wire.dhcp import (
    MESSAGE_TYPE,
    PARAMETER_REQUEST_LIST,
    REQUESTED_IP,
    SERVER_ID,
    DhcpMessage,
    MessageType,
    encode_message,
    parse_ipv4,
    parse_message,
)
from edgebox.wire.dhcp.decision import ReceivedOn
from edgebox.wire.dhcp.leases import Lease, LeaseState, LeaseTable
from edgebox.wire.dhcp.server import DhcpServer
from edgebox.wire.dhcp.server_config import (
    AddressRange,
    BootFiles,
    LinkConfig,
    ServerConfig,
    SubnetConfig,
)

NOW = 1_800_000_000.0
SERVER = parse_ipv4("10.1.0.1")
PRL = PARAMETER_REQUEST_LIST.encode((1, 3, 6, 12, 15, 28, 42, 119, 121))
PXE = {60: b"PXEClient:Arch:00007:UNDI:003016", 93: b"\x00\x07"}


def config() -> ServerConfig:
    subnet = SubnetConfig(
        id="10.1.0.0/16",
        network=parse_ipv4("10.1.0.0"),
        prefix=16,
        ranges=(AddressRange(parse_ipv4("10.1.0.10"), parse_ipv4("10.1.239.255")),),
        router=SERVER,
        dns=(SERVER,),
        domain_name="site.example",
        boot=BootFiles(
            tftp_server=SERVER,
            http_base="http://10.1.0.1:5248",
            script_url="http://10.1.0.1:5248/boot/ipxe?mac={mac}",
        ),
        server_address=SERVER,
    )
    return ServerConfig(
        links=(LinkConfig("eth0", "server", SERVER, (subnet.id,)),), subnets=(subnet,)
    )


def mac(prefix: int, i: int) -> bytes:
    return bytes((prefix, 0, 0, i >> 16 & 255, i >> 8 & 255, i & 255))


def message(
    kind: MessageType, chaddr: bytes, xid: int, requested: int = 0, ciaddr: int = 0
) -> DhcpMessage:
    options = {MESSAGE_TYPE.code: MESSAGE_TYPE.encode(kind), 55: PRL, **PXE}
    if requested:
        options[REQUESTED_IP.code] = REQUESTED_IP.encode(requested)
        options[SERVER_ID.code] = SERVER_ID.encode(SERVER)
    return DhcpMessage(op=1, xid=xid, flags=0x8000, chaddr=chaddr, ciaddr=ciaddr, options=options)


def loaded_table(clients: int) -> LeaseTable:
    table = LeaseTable()
    start = parse_ipv4("10.1.0.10")
    table.load(
        Lease(
            ip=start + 3 * i,  # spread out, so the free cursor has to skip
            mac=mac(2, i).hex(":"),
            client_id=None,
            subnet_id="10.1.0.0/16",
            state=LeaseState.BOUND,
            expires=NOW + 3600,
            ever_bound=True,
        )
        for i in range(clients)
    )
    return table


def timed(label: str, count: int, run: Callable[[], None]) -> None:
    gc.collect()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"{label:<48} {elapsed / count * 1e6:7.1f} µs/decision  {count / elapsed:9.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=10_000)
    args = parser.parse_args()
    server, table, here = DhcpServer(config()), loaded_table(args.clients), ReceivedOn("eth0")
    n = args.new
    discovers = [message(MessageType.DISCOVER, mac(6, i), i) for i in range(n)]
    offers: list[int] = []

    def discover() -> None:
        for msg in discovers:
            decision = server.handle(msg, here, table, NOW)
            assert decision.change is not None and decision.packet is not None
            table.apply(decision.change)
            offers.append(int.from_bytes(decision.packet[16:20], "big"))  # yiaddr

    timed(f"DISCOVER -> OFFER ({args.clients} bound)", n, discover)
    requests = [
        message(MessageType.REQUEST, mac(6, i), i, requested=ip) for i, ip in enumerate(offers)
    ]

    def request() -> None:
        for msg in requests:
            decision = server.handle(msg, here, table, NOW + 1)
            assert decision.change is not None and decision.change.durable
            table.apply(decision.change)

    timed("REQUEST (selecting) -> ACK", n, request)
    start = parse_ipv4("10.1.0.10")
    renewals = [
        message(MessageType.REQUEST, mac(2, i), i, ciaddr=start + 3 * i)
        for i in range(min(n, args.clients))
    ]

    def renew() -> None:
        for msg in renewals:
            decision = server.handle(msg, here, table, NOW + 2)
            assert decision.change is not None
            table.apply(decision.change)

    timed("REQUEST (renewing) -> ACK", len(renewals), renew)
    packets = [encode_message(message(MessageType.DISCOVER, mac(8, i), i)) for i in range(n)]

    def parse_and_discover() -> None:
        for data in packets:
            decision = server.handle(parse_message(data), here, table, NOW + 3)
            assert decision.change is not None
            table.apply(decision.change)

    timed("parse + DISCOVER -> OFFER", n, parse_and_discover)


if __name__ == "__main__":
    main()
