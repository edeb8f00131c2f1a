"""A lease the database cannot commit gets no reply at all: no ACK (the client would use an
address the database does not hold) and no NAK (the client did nothing wrong). The listener
goes on, and the client's next request, once the storage is back, gets its ACK.

The real DHCP service, the real packet loop and the real writer, over a fake socket and a
write connection that fails like a full disk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from edgebox.domain.settings import parse_settings
from edgebox.net.dhcp_listener import DhcpListener, _LinkSocket
from edgebox.services.dhcp_service import DhcpService, LinkInfo
from edgebox.services.dhcp_subnets import SubnetRegistry
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.lease_writes import LeaseWriteBatcher
from edgebox.services.machine_service import MachineService
from edgebox.storage.dhcp_store import DhcpStore
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.wire.dhcp import REQUESTED_IP, SERVER_ID, MessageType, parse_ipv4, parse_message
from tests.conftest import FakeClock
from tests.unit.net.test_dhcp_listener import FakeSocket
from tests.unit.services.test_dhcp_service import CONFIG, _request
from tests.unit.storage.flaky import DISK_FULL, flaky_database


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (the fake socket has no event)
            await asyncio.sleep(0.005)


async def test_a_lease_that_cannot_be_committed_gets_no_reply_and_a_retry_does(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with flaky_database(tmp_path / "edgebox.db", clock) as (db, conn):
        settings = parse_settings(CONFIG, "test", "/unused")
        store = DhcpStore(db)
        service = DhcpService(
            settings.dhcp,
            subnets=SubnetRegistry(settings.dhcp, store),
            writes=LeaseWriteBatcher(db, store),
            machines=MachineService(MachineStore(db)),
            events=EventService(EventStore(db), EventBus()),
            clock=clock,
            http_port=5248,
        )
        await service.load()
        service.link_up(LinkInfo("eth9", "10.9.0.1", 24, b"\x02\x00\x00\x00\x00\x01"))
        sock = FakeSocket([])
        link = _LinkSocket(DhcpListener(service), "eth9", 67, sock)  # type: ignore[arg-type]

        sock.inbox.append(_request(MessageType.DISCOVER, 1))
        link.readable()
        [(offer_bytes, _)] = sock.sent
        offered = parse_message(offer_bytes).yiaddr
        options = dict([REQUESTED_IP.item(offered), SERVER_ID.item(parse_ipv4("10.9.0.1"))])
        request = _request(MessageType.REQUEST, 1, options)

        caplog.set_level(logging.DEBUG)
        conn.fail("INSERT INTO dhcp_leases", DISK_FULL, abort=True)  # the disk is full
        for _ in range(3):  # the client retransmits: still nothing, not even a NAK
            sock.inbox.append(request)
            link.readable()
            failures = len(conn.failed)
            await _until(lambda: len(conn.failed) > failures)  # noqa: B023 (awaited here)
            await asyncio.sleep(0.01)  # the commit's callbacks have run
        assert len(sock.sent) == 1  # the OFFER only
        assert service.bound_count() == 0  # the table was restored: nothing is promised
        assert await store.all_leases() == []
        dhcp_errors = [
            r for r in caplog.records if r.name.startswith("edgebox.services.dhcp") and
            r.levelno >= logging.WARNING
        ]  # fmt: skip
        assert dhcp_errors == []  # the writer logs the episode, once; not each packet
        storage_errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(storage_errors) == 1 and "cause=disk_full" in storage_errors[0].getMessage()

        conn.heal()  # space is back
        sock.inbox.append(request)
        link.readable()
        await _until(lambda: len(sock.sent) == 2)
        ack = parse_message(sock.sent[1][0])
        assert ack.message_type is MessageType.ACK and ack.yiaddr == offered
        leases = await store.all_leases()
        assert [(lease.mac, lease.state.value) for lease in leases] == [
            ("52:54:00:00:00:01", "bound")
        ]
        assert db.health.describe() == "ok"
