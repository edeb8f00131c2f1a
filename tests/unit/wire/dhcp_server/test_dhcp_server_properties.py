"""Property: whatever clients do, no address is bound to two clients at once.

Hypothesis drives a handful of clients (direct and relayed, one with a reservation) through
random DISCOVER/REQUEST/renew/INIT-REBOOT/RELEASE/DECLINE sequences with time passing,
ARP probes that find the address taken, and database commits that fail. The driver acts
as the adapter would. From outside, through the replies only, it tracks who holds what and
checks every ACK: the address lies in a range of the client's subnet (or is its
reservation), and no other client holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dhcp_server_lab import IP, LAN, RELAY_SERVER, REMOTE, SERVER, Client, lab_config, lan_subnet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebox.wire.dhcp import LEASE_TIME, DhcpMessage, MessageType, encode_message, parse_message
from edgebox.wire.dhcp.decision import ReceivedOn
from edgebox.wire.dhcp.leases import ChangeKind, LeaseTable
from edgebox.wire.dhcp.server import DhcpServer
from edgebox.wire.dhcp.server_config import AddressRange, ServerConfig, SubnetConfig

LAN_RANGE = AddressRange(IP("10.0.0.100"), IP("10.0.0.105"))
REMOTE_RANGE = AddressRange(IP("10.20.0.50"), IP("10.20.0.53"))
RESERVED = IP("10.0.0.20")
GIADDR = IP("10.20.0.1")
MACS = [f"52:54:00:00:00:{i:02x}" for i in range(7)]
RELAYED = {5, 6}  # clients behind the relay
OWNER = 0  # the client with the reservation
CANDIDATES = [
    *range(LAN_RANGE.start, LAN_RANGE.end + 2),
    RESERVED,
    IP("10.0.0.50"),
    *range(REMOTE_RANGE.start, REMOTE_RANGE.end + 2),
]


def config() -> ServerConfig:
    base = lab_config()
    remote = base.subnets[1]
    subnets = (
        lan_subnet(ranges=(LAN_RANGE,), lease_time=300),
        SubnetConfig(
            id=REMOTE,
            network=remote.network,
            prefix=remote.prefix,
            ranges=(REMOTE_RANGE,),
            lease_time=200,
            server_address=RELAY_SERVER,
        ),
        base.subnets[2],
    )
    return ServerConfig(links=base.links, subnets=subnets, decline_quarantine=120.0)


@dataclass
class World:
    server: DhcpServer = field(default_factory=lambda: DhcpServer(config()))
    leases: LeaseTable = field(default_factory=LeaseTable)
    now: float = 1000.0
    held: dict[int, tuple[str, float]] = field(default_factory=dict)  # ip -> (mac, until)
    offered: dict[str, int] = field(default_factory=dict)
    bound: dict[str, int] = field(default_factory=dict)
    fail_commit: bool = False
    probe_hit: bool = False

    def __post_init__(self) -> None:
        self.leases.set_reservations({MACS[OWNER]: RESERVED})
        self.clients = [Client(mac) for mac in MACS]
        for i in RELAYED:
            self.clients[i].giaddr = GIADDR

    def exchange(self, who: int, msg: DhcpMessage) -> DhcpMessage | None:
        """One request through the server, as the adapter does it."""
        request = parse_message(encode_message(msg))
        decision = self.server.handle(request, ReceivedOn("eth0"), self.leases, self.now)
        change = decision.change
        if change is not None:
            before = self.leases.snapshot(change.lease.ip)
            self.leases.apply(change)
            if change.durable and self.fail_commit:
                self.leases.restore(before)
                self.fail_commit = False
                return None
        if decision.probe_ip is not None and self.probe_hit:
            self.probe_hit = False
            self.leases.mark_in_use(decision.probe_ip, self.now)
            return self.exchange(who, msg)
        if change is not None:
            self.observe_change(who, change.kind, change.lease.ip)
        if decision.packet is None:
            return None
        reply = parse_message(decision.packet)
        if reply.message_type is MessageType.ACK and reply.yiaddr:
            self.check_ack(who, reply)
        return reply

    def observe_change(self, who: int, kind: ChangeKind, ip: int) -> None:
        holder = self.held.get(ip)
        if kind in (ChangeKind.RELEASE, ChangeKind.DECLINE) and holder and holder[0] == MACS[who]:
            del self.held[ip]

    def check_ack(self, who: int, reply: DhcpMessage) -> None:
        ip, mac = reply.yiaddr, MACS[who]
        if who in RELAYED:
            assert ip in REMOTE_RANGE, f"{ip:#x} ACKed to relayed client {mac}"
        elif ip == RESERVED:
            assert who == OWNER, f"reserved address ACKed to {mac}"
        else:
            assert ip in LAN_RANGE, f"{ip:#x} ACKed outside the LAN range to {mac}"
        holder = self.held.get(ip)
        if holder is not None and holder[0] != mac:
            assert holder[1] <= self.now, f"{ip:#x} ACKed to {mac} while {holder[0]} holds it"
        lease_time = reply.get(LEASE_TIME)
        assert lease_time is not None
        self.held[ip] = (mac, self.now + lease_time)
        self.bound[mac] = ip

    def step(self, op: str, who: int, pick: int, seconds: int) -> None:
        client, mac = self.clients[who], MACS[who]
        server_id = RELAY_SERVER if who in RELAYED else SERVER
        some_ip = CANDIDATES[pick % len(CANDIDATES)]
        mine = self.bound.get(mac, some_ip)
        if op == "discover":
            reply = self.exchange(who, client.discover())
            if reply is not None and reply.message_type is MessageType.OFFER:
                self.offered[mac] = reply.yiaddr
        elif op == "select":
            self.exchange(who, client.select(self.offered.get(mac, some_ip), server_id))
        elif op == "select_other_server":
            self.exchange(who, client.select(self.offered.get(mac, some_ip), IP("10.9.9.9")))
        elif op == "init_reboot":
            self.exchange(who, client.init_reboot(mine if pick % 2 else some_ip))
        elif op == "renew":
            self.renew(who, mine if pick % 2 else some_ip, unicast=pick % 3 == 0)
        elif op == "release":
            self.exchange(who, client.release(mine, server_id))
        elif op == "decline":
            self.exchange(who, client.decline(self.offered.get(mac, mine), server_id))
        elif op == "advance":
            self.now += seconds
            if pick % 3 == 0:
                self.leases.expire(self.now)
        elif op == "fail_next_commit":
            self.fail_commit = True
        elif op == "probe_hit":
            self.probe_hit = True

    def renew(self, who: int, ip: int, unicast: bool) -> None:
        client = self.clients[who]
        if who in RELAYED and unicast and self.bound.get(MACS[who]) == ip:
            # A relayed client renews by unicast straight to the server: no giaddr. (With an
            # address that is not its own it would be a client of the link for all we know.)
            client.giaddr = 0
            self.exchange(who, client.renew(ip))
            client.giaddr = GIADDR
        else:
            self.exchange(who, client.renew(ip))


OPS = st.sampled_from(
    [
        "discover",
        "discover",
        "select",
        "select",
        "select_other_server",
        "init_reboot",
        "renew",
        "renew",
        "release",
        "decline",
        "advance",
        "advance",
        "fail_next_commit",
        "probe_hit",
    ]
)
STEPS = st.lists(
    st.tuples(
        OPS,
        st.integers(0, len(MACS) - 1),
        st.integers(0, 1000),
        st.integers(0, 400),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_no_address_is_ever_bound_to_two_clients(steps: list[tuple[str, int, int, int]]) -> None:
    world = World()
    for op, who, pick, seconds in steps:
        world.step(op, who, pick, seconds)
    # The table agrees: at most one active client hold per address, in its subnet.
    for lease in world.leases:
        if lease.active(world.now):
            assert lease.subnet_id in (LAN, REMOTE)


def test_a_busy_scenario_binds_everyone_it_can() -> None:
    world = World()
    for who in range(len(MACS)):
        world.step("discover", who, 0, 0)
        world.step("select", who, 0, 0)
    assert world.bound[MACS[OWNER]] == RESERVED
    assert len(set(world.bound.values())) == len(MACS)
