"""The DHCP adapter's packet loop with a fake socket and a fake service: what it reads per
wake-up, what it sends at once, and how a commit's ACKs go out (after it, rate-bounded)."""

from __future__ import annotations

import asyncio
from collections import deque

from edgebox.net import dhcp_listener
from edgebox.net.dhcp_listener import DhcpListener, _LinkSocket
from edgebox.services.dhcp_records import Outgoing
from edgebox.services.dhcp_service import Handled

RELAY = ("10.232.0.1", 67)


class FakeSocket:
    def __init__(self, datagrams: list[bytes]) -> None:
        self.inbox = deque(datagrams)
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.popleft(), RELAY

    def sendto(self, data: bytes, address: tuple[str, int]) -> int:
        self.sent.append((data, address))
        return len(data)


class FakeService:
    """b"offer N" is answered at once; b"ack N" waits for the commit future it is given."""

    def __init__(self, commit: asyncio.Future[None] | None = None) -> None:
        self.commit = commit
        self.received: list[bytes] = []
        self.failed: list[Handled] = []

    def receive(self, link: str, port: int, data: bytes, source: tuple[str, int]) -> Handled:
        self.received.append(data)
        reply = Outgoing(b"re:" + data, *RELAY)
        return Handled(reply, self.commit if data.startswith(b"ack") else None)

    def commit_failed(self, handled: Handled, future: asyncio.Future[None]) -> None:
        self.failed.append(handled)


def listening(service: FakeService, datagrams: list[bytes]) -> tuple[_LinkSocket, FakeSocket]:
    sock = FakeSocket(datagrams)
    listener = DhcpListener(service)  # type: ignore[arg-type]
    return _LinkSocket(listener, "eth0", 67, sock), sock  # type: ignore[arg-type]


async def test_a_wake_up_reads_one_batch_and_answers_what_needs_no_commit() -> None:
    service = FakeService()
    count = dhcp_listener.READ_BATCH + 5
    link, sock = listening(service, [b"offer %d" % i for i in range(count)])
    link.readable()
    assert len(service.received) == dhcp_listener.READ_BATCH  # the rest waits for the next turn
    assert [data for data, _ in sock.sent] == [b"re:offer %d" % i for i in range(len(sock.sent))]
    assert len(sock.sent) == dhcp_listener.READ_BATCH and sock.sent[0][1] == RELAY
    link.readable()
    assert len(service.received) == count and len(sock.sent) == count


async def test_acks_leave_after_their_commit_a_burst_then_at_a_bounded_rate() -> None:
    commit: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    service = FakeService(commit)
    acks = 150
    link, sock = listening(service, [b"ack %d" % i for i in range(acks)])
    for _ in range(acks // dhcp_listener.READ_BATCH + 1):
        link.readable()
    assert len(service.received) == acks and sock.sent == []  # nothing before the commit
    commit.set_result(None)
    await asyncio.sleep(0)  # the commit's callback: one burst's worth at once
    assert 64 <= len(sock.sent) < acks
    async with asyncio.timeout(5):
        while len(sock.sent) < acks:  # noqa: ASYNC110 (the fake socket has no event)
            await asyncio.sleep(0.001)
    assert [data for data, _ in sock.sent] == [b"re:ack %d" % i for i in range(acks)]


async def test_a_failed_commit_sends_nothing_and_tells_the_service() -> None:
    commit: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    service = FakeService(commit)
    link, sock = listening(service, [b"ack 1", b"offer 2", b"ack 3"])
    link.readable()
    commit.set_exception(OSError("disk full"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [data for data, _ in sock.sent] == [b"re:offer 2"]
    assert len(service.failed) == 2
