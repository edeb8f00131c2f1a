"""The DHCP server as a service: the pure core, the lease table, durability and side effects.

Per packet (`receive`, synchronous, on the event loop): parse, let `DhcpServer` decide,
apply its lease change to the in-memory table at once (so the next packet sees it), and hand
the adapter what to send and when. A durable change (an ACK's binding, a RELEASE, a DECLINE)
is queued for the database and the reply waits for that commit; all the lease writes made in
one turn of the event loop go to the writer as ONE job, so a burst of ACKs costs one commit.
If the commit fails the table is restored and nothing is sent: no client ever holds an ACK
for a lease the database does not have.

Off the hot path (`run`): PXE clients whose MAC is unknown are enlisted as New machines, boot
requests become boot-timeline events, and addresses found in use become events.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgebox.domain.dhcp import ForeignServer, LeaseRecord, LeaseState
from edgebox.domain.errors import Conflict, NotFound, StorageUnavailable
from edgebox.domain.models import EventLevel, NewEvent
from edgebox.domain.settings import DhcpSettings
from edgebox.services.clock import Clock
from edgebox.services.dhcp_config import build_server_config
from edgebox.services.dhcp_records import (
    Outgoing,
    arch_name,
    ip_from_text,
    outgoing,
    to_record,
    to_row,
    to_wire,
)
from edgebox.services.dhcp_rogue_probe import PROBE_MAC_PREFIX, RogueServerProbe
from edgebox.services.dhcp_subnets import SubnetRegistry
from edgebox.services.event_service import EventService
from edgebox.services.lease_writes import LeaseWriteBatcher
from edgebox.services.machine_service import MachineService
from edgebox.wire.dhcp import DhcpMessage, DhcpParseError, MessageType, format_ipv4, parse_message
from edgebox.wire.dhcp.boot import BootChoice
from edgebox.wire.dhcp.decision import Decision, ReceivedOn
from edgebox.wire.dhcp.leases import DURABLE, Lease, LeaseSnapshot, LeaseTable
from edgebox.wire.dhcp.leases import LeaseState as WireState
from edgebox.wire.dhcp.server import DhcpServer
from edgebox.wire.dhcp.server_config import ServerConfig

log = logging.getLogger(__name__)

SIDE_QUEUE = 4096
SENDERS_KEPT = 1024  # distinct (link, port, source) of requests remembered (`_received_on`)


@dataclass(frozen=True, slots=True)
class LinkSpec:
    name: str
    netns: str
    mode: str
    arp_probe: bool


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    address: str
    prefix: int
    mac: bytes


@dataclass(slots=True)
class LinkStatus:
    name: str
    netns: str
    mode: str
    state: str = "starting"  # starting | up | error
    address: str | None = None
    error: str | None = None
    received: int = 0
    sent: int = 0
    dropped: int = 0


@dataclass(slots=True)
class Handled:
    """What the adapter does with one request (see `DhcpListener`)."""

    reply: Outgoing | None
    commit: asyncio.Future[None] | None = None
    probe_ip: int | None = None
    snapshot: LeaseSnapshot | None = None


@dataclass(frozen=True, slots=True)
class _BootSeen:
    mac: str
    choice: BootChoice
    link: str


@dataclass(frozen=True, slots=True)
class _InUse:
    link: str
    ip: int
    holder: str


@dataclass(slots=True)
class _SideWork:
    """Work for `run()`: enlistment and events, kept off the packet path."""

    queue: asyncio.Queue[_BootSeen | _InUse] = field(
        default_factory=lambda: asyncio.Queue(SIDE_QUEUE)
    )
    enlisting: set[str] = field(default_factory=set)


class DhcpService:
    def __init__(
        self,
        settings: DhcpSettings,
        *,
        subnets: SubnetRegistry,
        writes: LeaseWriteBatcher,
        machines: MachineService,
        events: EventService,
        clock: Clock,
        http_port: int,
    ) -> None:
        self.settings = settings
        self.subnets = subnets
        self._writes = writes
        self._store = writes.store
        self._machines = machines
        self._events = events
        self._clock = clock
        self._http_port = http_port
        self._table = LeaseTable(quarantine=600.0)
        self._links: dict[str, LinkInfo] = {}
        self._status = {i.name: LinkStatus(i.name, i.netns, i.mode) for i in settings.interfaces}
        self._server = DhcpServer(ServerConfig(links=(), subnets=()))
        self._rogue = RogueServerProbe(self._store, clock)
        self._side = _SideWork()
        self._senders: dict[tuple[str, int, tuple[str, int]], ReceivedOn] = {}
        subnets.on_change(self._rebuild)
        subnets.set_validator(self._validate)

    # Start-up and configuration

    async def load(self) -> None:
        await self.subnets.load()
        self._table.load(to_wire(r) for r in await self._store.all_leases())
        reservations = await self._store.reservations()
        self._table.set_reservations(
            {mac: int(ipaddress.IPv4Address(ip)) for mac, ip in reservations.items()}
        )
        self._rebuild()
        log.info("dhcp leases loaded count=%d", len(self._table))

    def links(self) -> list[LinkSpec]:
        probe = self.settings.arp_probe_ms > 0
        return [
            LinkSpec(i.name, i.netns, i.mode, probe and i.mode == "server")
            for i in self.settings.interfaces
        ]

    def set_http_port(self, port: int) -> None:
        """The machine-facing port as bound (the config may say 0); boot URLs use it."""
        self._http_port = port
        self._rebuild()

    @property
    def arp_wait(self) -> float:
        return self.settings.arp_probe_ms / 1000

    @property
    def rogue_probe_interval(self) -> float:
        return float(self.settings.rogue_probe_interval)

    def link_up(self, info: LinkInfo) -> None:
        self._links[info.name] = info
        status = self._status[info.name]
        status.state, status.address, status.error = "up", info.address, None
        self._rebuild()
        log.info("dhcp serving link=%s address=%s/%d", info.name, info.address, info.prefix)

    def link_failed(self, spec: LinkSpec, error: str) -> None:
        status = self._status[spec.name]
        if status.error != error:
            log.error("dhcp cannot serve link=%s netns=%s error=%s", spec.name, spec.netns, error)
        status.state, status.error = "error", error

    def _server_config(self) -> ServerConfig:
        return build_server_config(
            self.settings, [s.settings for s in self.subnets.all()], self._links, self._http_port
        )

    def _validate(self) -> None:
        self._server_config()  # raises ValueError naming the contradiction

    def _rebuild(self) -> None:
        try:
            self._server = DhcpServer(self._server_config())
        except ValueError as exc:
            log.error("dhcp configuration not applied: %s", exc)

    # The packet path

    def receive(self, link: str, port: int, data: bytes, source: tuple[str, int]) -> Handled | None:
        status = self._status[link]
        status.received += 1
        try:
            msg = parse_message(data)
            if msg.chaddr.startswith(PROBE_MAC_PREFIX):
                return None  # our own rogue-server probe
            received = self._received_on(link, port, source)
            decision = self._server.handle(msg, received, self._table, self._clock.now())
        except DhcpParseError as exc:
            status.dropped += 1
            log.debug("dhcp dropped link=%s source=%s error=%s", link, source[0], exc)
            return None
        return self._act(decision, msg, link)

    def _received_on(self, link: str, port: int, source: tuple[str, int]) -> ReceivedOn:
        """Requests come from a few senders (the relays, 0.0.0.0:68): one `ReceivedOn` each,
        instead of parsing the source address and building one per packet."""
        key = (link, port, source)
        received = self._senders.get(key)
        if received is None:
            if len(self._senders) >= SENDERS_KEPT:
                self._senders.clear()
            received = ReceivedOn(link, port, ip_from_text(source[0]), source[1])
            self._senders[key] = received
        return received

    def _act(self, decision: Decision, msg: DhcpMessage, link: str) -> Handled | None:
        reply = outgoing(decision)
        change = decision.change
        commit = snapshot = None
        if change is not None:
            if change.kind in DURABLE:
                snapshot = self._table.snapshot(change.lease.ip)
                self._table.apply(change)
                commit = self._writes.add(to_row(change.lease))
            else:
                self._table.apply(change)
        if reply is not None:
            self._status[link].sent += 1
        if decision.boot is not None and msg.message_type is MessageType.REQUEST:
            self._side_work(_BootSeen(msg.mac, decision.boot, link))
        if log.isEnabledFor(logging.DEBUG):  # msg.mac formats the address: only when logged
            log.debug("dhcp %s link=%s mac=%s xid=%#x", decision.reason, link, msg.mac, msg.xid)
        if reply is None and commit is None:
            return None
        return Handled(reply, commit, decision.probe_ip, snapshot)

    def commit_failed(self, handled: Handled, future: asyncio.Future[None]) -> None:
        """The lease was not committed: forget it and send nothing (no ACK for a lease the
        database does not hold, and no NAK either: the client did nothing wrong, and it asks
        again by itself, which succeeds once the storage is back)."""
        if handled.snapshot is not None:
            self._table.restore(handled.snapshot)
        error = None if future.cancelled() else future.exception()
        # A storage failure is logged once per episode by the writer, not once per packet.
        level = logging.DEBUG if isinstance(error, StorageUnavailable) else logging.ERROR
        log.log(level, "dhcp lease not committed; reply withheld error=%s", error)

    def address_in_use(self, link: str, ip: int, holder: bytes) -> None:
        self._table.mark_in_use(ip, self._clock.now())
        self._side_work(_InUse(link, ip, holder.hex(":")))

    def _side_work(self, item: _BootSeen | _InUse) -> None:
        try:
            self._side.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("dhcp side work queue full; dropped %s", item)

    # Off the packet path

    async def run(self) -> None:
        while True:
            item = await self._side.queue.get()
            try:
                if isinstance(item, _BootSeen):
                    await self._boot_seen(item.mac, item.choice, item.link)
                else:
                    await self._events.append(
                        NewEvent(
                            "dhcp.address_in_use",
                            f"{format_ipv4(item.ip)} on {item.link} answered an ARP probe "
                            f"from {item.holder}; not offered",
                            level=EventLevel.WARNING,
                            data={
                                "ip": format_ipv4(item.ip),
                                "link": item.link,
                                "holder": item.holder,
                            },
                        )
                    )
            except StorageUnavailable as exc:  # the writer logs the episode
                log.debug("dhcp side work not recorded item=%s error=%s", item, exc)
            except Exception:
                log.exception("dhcp side work failed item=%s", item)

    async def _boot_seen(self, mac: str, choice: BootChoice, link: str) -> None:
        stage = "loader" if choice.first_stage else "ipxe"
        await self._events.append(
            NewEvent(
                "boot.dhcp",
                f"{mac} network boot on {link}: {choice.kind.value} gets {choice.file}",
                data={
                    "mac": mac,
                    "link": link,
                    "kind": choice.kind.value,
                    "file": choice.file,
                    "transport": choice.transport.value,
                    "stage": stage,
                    "arch": choice.arch,
                },
            )
        )
        if mac in self._side.enlisting or await self._store.known_mac(mac):
            return
        self._side.enlisting.add(mac)
        try:
            machine = await self._machines.create(
                [mac], "dhcp", arch=arch_name(choice), enlisted=True
            )
            log.info("enlisted system_id=%s mac=%s link=%s", machine.system_id, mac, link)
        except Conflict:
            pass  # enlisted meanwhile by another path
        finally:
            self._side.enlisting.discard(mac)

    # The rogue-server probe (the listener sends it and hands back what it hears)

    def make_probe(self, link: str) -> Outgoing:
        info = self._links.get(link)
        return self._rogue.make_probe(link, info.address if info else "")

    async def offer_seen(self, link: str, data: bytes, source: tuple[str, int]) -> None:
        await self._rogue.offer_seen(link, data, source)

    # Reads and operator actions

    def status(self) -> list[LinkStatus]:
        return list(self._status.values())

    def bound_count(self) -> int:
        now = self._clock.now()
        return sum(
            1 for lease in self._table if lease.state is WireState.BOUND and lease.active(now)
        )

    def mac_for_ip(self, ip: str) -> str | None:
        """The MAC holding `ip` now (boot steps that arrive by IP: TFTP, HTTP loaders)."""
        lease = self._table.get(ip_from_text(ip))
        return lease.mac if lease is not None and lease.active(self._clock.now()) else None

    def ips_of_mac(self, mac: str) -> frozenset[str]:
        """The addresses `mac` holds now (the boot window rule: the agent must come from one)."""
        now = self._clock.now()
        return frozenset(
            format_ipv4(lease.ip) for lease in self._table.leases_of(mac) if lease.active(now)
        )

    def now(self) -> float:
        return self._clock.now()

    async def leases(
        self, subnet: str | None, mac: str | None, states: Sequence[LeaseState], limit: int
    ) -> list[LeaseRecord]:
        return await self._store.leases(subnet, mac, states, limit)

    async def foreign_servers(self) -> list[ForeignServer]:
        return await self._store.foreign_servers()

    async def release(self, ip: int) -> LeaseRecord:
        lease = self._table.get(ip)
        now = self._clock.now()
        if lease is None or not lease.active(now):
            raise NotFound("active lease", format_ipv4(ip))
        released = Lease(
            ip=ip, mac=lease.mac, client_id=lease.client_id, subnet_id=lease.subnet_id,
            state=WireState.RELEASED, expires=now, hostname=lease.hostname, ever_bound=True,
        )  # fmt: skip
        snapshot = self._table.snapshot(ip)
        self._table.restore(LeaseSnapshot(ip, released))
        try:
            await self._writes.add(to_row(released))
        except BaseException:
            self._table.restore(snapshot)
            raise
        return to_record(released)
