"""A simulated client over a lossy, duplicating, reordering network, with fake time.

Property: whatever the file size, blksize, windowsize and loss pattern, the bytes the client
reassembles are a prefix of the file, all of it when the client finishes; otherwise the transfer
failed on the retry limit. Never wrong bytes, never a transfer stuck forever.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgebox.wire.tftp import (
    DATA,
    ERROR,
    OACK,
    FileError,
    FileSource,
    Outcome,
    ReadTransfer,
    StartTransfer,
    TftpServer,
    TftpServerConfig,
    TransferLimits,
    encode_ack,
    parse_packet,
)

CLIENT_ADDR = ("198.51.100.7", 3001)
CLIENT_TIMEOUT = 1.0
CLIENT_MAX_RETRIES = 8
MAX_EVENTS = 200_000


class BytesSource:
    def __init__(self, content: bytes) -> None:
        self.content = content

    @property
    def size(self) -> int:
        return len(self.content)

    def read(self, offset: int, length: int) -> bytes:
        return self.content[offset : offset + length]


@dataclass
class Network:
    """Delivers datagrams after a random delay, maybe twice, maybe never."""

    rng: random.Random
    loss_to_server: float
    loss_to_client: float
    duplication: float
    reorder: bool
    in_flight: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    sequence: int = 0

    def send(self, now: float, to: str, datagram: bytes) -> None:
        loss = self.loss_to_server if to != "client" else self.loss_to_client
        copies = 2 if self.rng.random() < self.duplication else 1
        for _ in range(copies):
            if self.rng.random() < loss:
                continue
            self.sequence += 1
            # Enough spread to reorder a window; a fixed delay keeps datagrams in order.
            delay = self.rng.uniform(0.0005, 0.02) if self.reorder else 0.001
            heapq.heappush(self.in_flight, (now + delay, self.sequence, to, datagram))


@dataclass
class SimClient:
    """An RFC 1350 / RFC 7440 receiver, written from the RFC text, not from the server."""

    request: bytes
    blksize: int = 512
    windowsize: int = 1
    received: bytearray = field(default_factory=bytearray)
    next_block: int = 1  # absolute index of the block wanted next
    since_ack: int = 0
    gap_acked: bool = False
    started: bool = False  # heard from the server
    finished: bool = False
    failed: bool = False
    deadline: float | None = None
    retries: int = 0

    def timer(self, now: float) -> list[tuple[str, bytes]]:
        if self.retries >= CLIENT_MAX_RETRIES:
            self.failed, self.deadline = True, None
            return []
        self.retries += 1
        self.deadline = now + CLIENT_TIMEOUT
        if not self.started:
            return [("port69", self.request)]
        self.since_ack = 0
        return [("transfer", encode_ack((self.next_block - 1) % 65536))]

    def receive(self, datagram: bytes, now: float) -> list[tuple[str, bytes]]:
        if self.failed:
            return []
        packet = parse_packet(datagram)
        if isinstance(packet, ERROR):
            self.failed, self.deadline = True, None
            return []
        if isinstance(packet, OACK):
            return self._on_oack(packet, now)
        assert isinstance(packet, DATA), packet
        return self._on_data(packet, now)

    def _on_oack(self, packet: OACK, now: float) -> list[tuple[str, bytes]]:
        if self.next_block > 1:
            return []  # data already flowing: a stale retransmission
        options = dict(packet.options)
        self.blksize = int(options.get("blksize", "512"))
        self.windowsize = int(options.get("windowsize", "1"))
        self._progress(now)
        return [("transfer", encode_ack(0))]

    def _on_data(self, packet: DATA, now: float) -> list[tuple[str, bytes]]:
        last_acked = (self.next_block - 1 - self.since_ack) % 65536
        if packet.block != self.next_block % 65536:
            if packet.block == last_acked or self.finished:
                # A retransmission of what we acknowledged: our ACK was lost, say it again.
                self.since_ack = 0
                return [("transfer", encode_ack((self.next_block - 1) % 65536))]
            if not self.gap_acked and self.since_ack:
                # RFC 7440: a gap in the window; acknowledge the last block in order.
                self.gap_acked, self.since_ack = True, 0
                return [("transfer", encode_ack((self.next_block - 1) % 65536))]
            return []
        self.received += packet.data
        self.next_block += 1
        self.since_ack += 1
        self._progress(now)
        if len(packet.data) < self.blksize:
            self.finished, self.deadline = True, None  # then dally: re-ACK repeats
        elif self.since_ack < self.windowsize:
            return []
        self.since_ack, self.gap_acked = 0, False
        return [("transfer", encode_ack(packet.block))]

    def _progress(self, now: float) -> None:
        self.started = True
        self.retries = 0
        self.deadline = now + CLIENT_TIMEOUT


@dataclass
class Simulation:
    """One server, one client, one network; events run in time order until none is left."""

    content: bytes
    client: SimClient
    network: Network
    server: TftpServer
    transfer: ReadTransfer | None = None

    def run(self) -> None:
        self._send(0.0, self.client.timer(0.0))
        for _ in range(MAX_EVENTS):
            event = self._next_event()
            if event is None:
                return
            now, kind = event
            if kind == "server-timer":
                assert self.transfer is not None
                self._send(now, [("client", d) for d in self.transfer.handle_timer(now)])
            elif kind == "client-timer":
                self._send(now, self.client.timer(now))
            else:
                _, _, to, datagram = heapq.heappop(self.network.in_flight)
                self._send(now, self._deliver(to, datagram, now))
        raise AssertionError("simulation did not settle")

    def _next_event(self) -> tuple[float, str] | None:
        client_waiting = not (self.client.finished or self.client.failed)
        pending = [
            (self.network.in_flight[0][0] if self.network.in_flight else None, "network"),
            (self.transfer.get_timer() if self.transfer else None, "server-timer"),
            (self.client.deadline if client_waiting else None, "client-timer"),
        ]
        due = [(at, kind) for at, kind in pending if at is not None]
        return min(due) if due else None

    def _deliver(self, to: str, datagram: bytes, now: float) -> list[tuple[str, bytes]]:
        if to == "client":
            return self.client.receive(datagram, now)
        if to == "port69":
            decision = self.server.handle_request(datagram, CLIENT_ADDR, now, self._resolve)
            # A late duplicate RRQ can start a second transfer once the first is over; a real
            # client answers its packets (from a new TID) with ERROR 5, so it is ignored here.
            if isinstance(decision, StartTransfer) and self.transfer is None:
                self.transfer = decision.transfer
                return [("client", d) for d in decision.packets]
            return []
        if self.transfer is None:
            return []
        return [("client", d) for d in self.transfer.receive(datagram, now)]

    def _send(self, now: float, datagrams: list[tuple[str, bytes]]) -> None:
        for to, datagram in datagrams:
            self.network.send(now, to, datagram)

    def _resolve(self, path: str) -> FileSource | FileError:
        return BytesSource(self.content)


def simulate(
    content: bytes, options: bytes, limits: TransferLimits, network: Network
) -> Simulation:
    client = SimClient(b"\x00\x01boot.efi\x00octet\x00" + options)
    server = TftpServer(TftpServerConfig(limits=limits))
    simulation = Simulation(content, client, network, server)
    simulation.run()
    return simulation


def option_bytes(blksize: int | None, windowsize: int | None, tsize: bool) -> bytes:
    options = b"tsize\x000\x00" if tsize else b""
    if blksize is not None:
        options += b"blksize\x00%d\x00" % blksize
    if windowsize is not None:
        options += b"windowsize\x00%d\x00" % windowsize
    return options


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(0, 2500),
    blksize=st.none() | st.integers(8, 600),
    windowsize=st.none() | st.integers(1, 8),
    tsize=st.booleans(),
    loss_to_server=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
    loss_to_client=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
    duplication=st.sampled_from([0.0, 0.1]),
    reorder=st.booleans(),
    max_retransmits=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
)
@example(
    size=5000,
    blksize=8,
    windowsize=8,
    tsize=True,
    loss_to_server=0.5,
    loss_to_client=0.5,
    duplication=0.1,
    reorder=True,
    max_retransmits=2,
    seed=1,
)
@example(
    size=1024,
    blksize=None,
    windowsize=None,
    tsize=False,
    loss_to_server=0.0,
    loss_to_client=0.0,
    duplication=0.0,
    reorder=False,
    max_retransmits=0,
    seed=0,
)
def test_lossy_delivery_never_yields_wrong_bytes(
    size: int,
    blksize: int | None,
    windowsize: int | None,
    tsize: bool,
    loss_to_server: float,
    loss_to_client: float,
    duplication: float,
    reorder: bool,
    max_retransmits: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    content = rng.randbytes(size)
    limits = TransferLimits(max_blksize=600, max_windowsize=8, max_retransmits=max_retransmits)
    network = Network(rng, loss_to_server, loss_to_client, duplication, reorder)
    outcome = simulate(content, option_bytes(blksize, windowsize, tsize), limits, network)
    client, transfer = outcome.client, outcome.transfer

    assert bytes(client.received) == content[: len(client.received)]
    if client.finished:
        assert bytes(client.received) == content
    if transfer is None:  # every RRQ was lost
        assert client.failed and not client.received
        return
    result = transfer.result
    assert result is not None, "the server side must always end"
    if result.ok:
        assert client.finished
    else:
        assert result.outcome is Outcome.TIMED_OUT, result
        assert result.retransmits >= max_retransmits
    if loss_to_server == loss_to_client == duplication == 0.0 and not reorder:
        assert result.ok and result.retransmits == 0 and result.duplicate_acks == 0
