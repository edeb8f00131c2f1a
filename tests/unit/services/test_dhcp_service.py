"""The DHCP service over a real database: commit before ACK, rollback, enlistment, subnets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from edgebox.domain.errors import Conflict, InvalidInput
from edgebox.domain.models import MachineFilter
from edgebox.domain.settings import parse_settings
from edgebox.services.dhcp_service import DhcpService, LinkInfo
from edgebox.services.dhcp_subnets import SubnetRegistry
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.lease_writes import LeaseWriteBatcher
from edgebox.services.machine_service import MachineService
from edgebox.storage.database import Database
from edgebox.storage.dhcp_store import DhcpStore
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.wire.dhcp import (
    FLAG_BROADCAST,
    MESSAGE_TYPE,
    REQUESTED_IP,
    SERVER_ID,
    DhcpMessage,
    MessageType,
    encode_message,
    parse_ipv4,
    parse_message,
)
from tests.conftest import FakeClock

CONFIG = {
    "dhcp": {
        "interfaces": [{"name": "eth9"}],
        "subnets": [
            {
                "cidr": "10.9.0.0/24",
                "ranges": [{"start": "10.9.0.100", "end": "10.9.0.109"}],
                "router": "10.9.0.1",
            }
        ],
    }
}
PXE_BIOS = {60: b"PXEClient:Arch:00000:UNDI:002001", 93: b"\x00\x00"}


@dataclass
class Rig:
    service: DhcpService
    db: Database
    machines: MachineService
    writes: LeaseWriteBatcher
    clock: FakeClock


@pytest.fixture
async def rig(db: Database, clock: FakeClock) -> AsyncIterator[Rig]:
    settings = parse_settings(CONFIG, "test", "/unused")
    store = DhcpStore(db)
    machines = MachineService(MachineStore(db))
    writes = LeaseWriteBatcher(db, store)
    service = DhcpService(
        settings.dhcp,
        subnets=SubnetRegistry(settings.dhcp, store),
        writes=writes,
        machines=machines,
        events=EventService(EventStore(db), EventBus()),
        clock=clock,
        http_port=5248,
    )
    await service.load()
    service.link_up(LinkInfo("eth9", "10.9.0.1", 24, b"\x02\x00\x00\x00\x00\x01"))
    yield Rig(service, db, machines, writes, clock)


def _request(kind: MessageType, mac: int, extra: dict[int, bytes] | None = None) -> bytes:
    options = dict([MESSAGE_TYPE.item(kind)])
    options.update(extra or {})
    chaddr = bytes.fromhex(f"5254000000{mac:02x}")
    return encode_message(
        DhcpMessage(op=1, xid=0x1000 + mac, flags=FLAG_BROADCAST, chaddr=chaddr, options=options)
    )


async def _dora(rig: Rig, mac: int, extra: dict[int, bytes] | None = None) -> DhcpMessage:
    offer = rig.service.receive(
        "eth9", 67, _request(MessageType.DISCOVER, mac, extra), ("0.0.0.0", 68)
    )
    assert offer is not None and offer.reply is not None and offer.commit is None
    offered = parse_message(offer.reply.data)
    assert offered.message_type is MessageType.OFFER
    options = {
        **dict([REQUESTED_IP.item(offered.yiaddr), SERVER_ID.item(parse_ipv4("10.9.0.1"))]),
        **(extra or {}),
    }
    ack = rig.service.receive(
        "eth9", 67, _request(MessageType.REQUEST, mac, options), ("0.0.0.0", 68)
    )
    assert ack is not None and ack.reply is not None and ack.commit is not None
    assert not ack.commit.done()  # the ACK waits for its commit
    await ack.commit
    assert (ack.reply.ip, ack.reply.port) == ("255.255.255.255", 68)
    return parse_message(ack.reply.data)


async def test_an_ack_is_committed_before_it_is_sent(rig: Rig) -> None:
    ack = await _dora(rig, 1)
    assert ack.message_type is MessageType.ACK
    leases = await DhcpStore(rig.db).all_leases()
    assert [(lease.ip, lease.mac, lease.state.value) for lease in leases] == [
        (ack.yiaddr, "52:54:00:00:00:01", "bound")
    ]


async def test_a_burst_of_acks_is_one_write_job(rig: Rig) -> None:
    handled = []
    for mac in range(1, 9):
        offer = rig.service.receive(
            "eth9", 67, _request(MessageType.DISCOVER, mac), ("0.0.0.0", 68)
        )
        assert offer and offer.reply
        yiaddr = parse_message(offer.reply.data).yiaddr
        options = dict([REQUESTED_IP.item(yiaddr), SERVER_ID.item(parse_ipv4("10.9.0.1"))])
        handled.append(
            rig.service.receive(
                "eth9", 67, _request(MessageType.REQUEST, mac, options), ("0.0.0.0", 68)
            )
        )
    commits = {id(h.commit) for h in handled if h}
    assert len(commits) == 1  # same turn of the loop: one coalesced write
    await asyncio.gather(*(h.commit for h in handled if h and h.commit))
    assert rig.writes.batches == 1
    assert len(await DhcpStore(rig.db).all_leases()) == 8


async def test_a_failed_commit_restores_the_table(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer = rig.service.receive("eth9", 67, _request(MessageType.DISCOVER, 1), ("0.0.0.0", 68))
    assert offer and offer.reply
    yiaddr = parse_message(offer.reply.data).yiaddr

    def broken(fn):  # type: ignore[no-untyped-def]
        future = asyncio.get_running_loop().create_future()
        future.set_exception(OSError("disk full"))
        return future

    monkeypatch.setattr(rig.db, "submit", broken)
    options = dict([REQUESTED_IP.item(yiaddr), SERVER_ID.item(parse_ipv4("10.9.0.1"))])
    ack = rig.service.receive(
        "eth9", 67, _request(MessageType.REQUEST, 1, options), ("0.0.0.0", 68)
    )
    assert ack and ack.commit
    with pytest.raises(OSError):
        await ack.commit
    rig.service.commit_failed(ack, ack.commit)
    assert rig.service.bound_count() == 0


async def test_malformed_packets_are_dropped_and_counted(rig: Rig) -> None:
    for junk in (b"", b"\x01" * 50, _request(MessageType.DISCOVER, 1)[:-60] + b"\x35\x05"):
        assert rig.service.receive("eth9", 67, junk, ("10.9.0.5", 68)) is None
    status = rig.service.status()[0]
    assert status.dropped >= 2 and status.received == 3


async def test_a_pxe_client_with_an_unknown_mac_is_enlisted(rig: Rig) -> None:
    runner = asyncio.create_task(rig.service.run())
    try:
        ack = await _dora(rig, 7, PXE_BIOS)
        assert ack.file.decode() == "undionly.kpxe"
        for _ in range(100):
            found = await rig.machines.query(MachineFilter(mac="52:54:00:00:00:07"), 10)
            if found.items:
                break
            await asyncio.sleep(0.01)
        assert found.items and found.items[0].status.value == "new"
        assert found.items[0].arch == "amd64/generic"
        # A second boot of the same machine enlists nothing new.
        await _dora(rig, 7, PXE_BIOS)
        await asyncio.sleep(0.05)
        again = await rig.machines.query(MachineFilter(mac="52:54:00:00:00:07"), 10)
        assert again.total == 1
    finally:
        runner.cancel()


async def test_a_plain_client_is_not_enlisted(rig: Rig) -> None:
    runner = asyncio.create_task(rig.service.run())
    try:
        await _dora(rig, 8)
        await asyncio.sleep(0.05)
        assert (await rig.machines.query(MachineFilter(), 10)).total == 0
    finally:
        runner.cancel()


async def test_subnets_through_the_api_are_checked(rig: Rig) -> None:
    subnets = rig.service.subnets
    made = await subnets.create(
        {"cidr": "10.50.0.0/24", "ranges": [{"start": "10.50.0.10", "end": "10.50.0.20"}]}
    )
    assert made.source == "api"
    with pytest.raises(Conflict, match="overlaps"):
        await subnets.create({"cidr": "10.50.0.128/25"})
    with pytest.raises(InvalidInput) as info:
        await subnets.create(
            {"cidr": "10.60.0.0/24", "ranges": [{"start": "10.61.0.1", "end": "10.60.0.9"}]}
        )
    assert info.value.field == "ranges[0].start"
    with pytest.raises(Conflict, match="configuration file"):
        await subnets.delete("10.9.0.0/24")
    with pytest.raises(Conflict, match="would not be served"):
        await subnets.create(
            {
                "cidr": "10.70.0.0/24",
                "router": "10.70.0.5",
                "ranges": [{"start": "10.70.0.1", "end": "10.70.0.9"}],
            }
        )
    await subnets.delete("10.50.0.0/24")
    assert [s.settings.cidr for s in subnets.all()] == ["10.9.0.0/24"]
