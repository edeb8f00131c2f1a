"""The asyncio side of the TFTP server: request sockets, one socket per transfer, timers.

Every decision is made by the sans-IO core (`edgebox.wire.tftp`); this module moves datagrams.
- Per configured interface, a request socket on port 69 is opened inside the interface's
  namespace and pinned to it (SO_BINDTODEVICE); an interface that cannot be opened is retried
  every few seconds and shown in `status()`, and never stops the others.
- Each request goes to `TftpServer.handle_request` with a resolver over the `FileStore`. A
  started transfer gets a fresh socket (its TID, RFC 1350 section 4) bound to the address the
  request was sent to (IP_PKTINFO) and to the same device, made by the namespace's socket
  factory: a thread that entered the namespace once (see netns_sockets.py).
- Sockets are read with `loop.add_reader`: a request port drains up to READ_BATCH datagrams
  per wake-up (a rack's RRQs come in a burst; asyncio's datagram transport would read one per
  loop turn), a transfer socket reads the one ACK its client sent (see `_Transfer.readable`).
  Writes are non-blocking `sendto`s; a full send buffer drops the datagram like a lossy link
  would, and the transfer's timer resends it. A datagram on a transfer's port from any other
  address gets ERROR 5 (which is why transfer sockets are not connect()ed).
- Each transfer has one `loop.call_at` timer. It is re-armed only when the core's deadline
  moves earlier; a timer that fires before a later deadline just re-arms (the core ignores an
  early `handle_timer`). Deadlines move later on every ACK, so this saves a heap push per block.
- A transfer's end is logged at info with client, file, bytes, seconds and outcome; its socket
  closes, its timer is cancelled and its file handle released. Cancelling `run()` aborts every
  transfer (the client gets an ERROR), closes every socket and the file store's descriptors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edgebox.domain.tftp_settings import TftpSettings
from edgebox.net.netns_sockets import NetnsSocketFactory
from edgebox.net.tftp_socket import (
    PKTINFO_SPACE,
    TftpEndpoint,
    open_request_socket,
    open_transfer_socket,
    request_destination,
)
from edgebox.services.tftp_files import ServedFile
from edgebox.wire.tftp import (
    Drop,
    FileError,
    Reply,
    StartTransfer,
    TftpServer,
    TftpServerConfig,
    TransferLimits,
    TransferResult,
    unknown_tid_error,
)

__all__ = [
    "FileStore",
    "TftpEndpoint",
    "TftpInterfaceStatus",
    "TftpListener",
    "TftpStatus",
    "server_config",
]

log = logging.getLogger(__name__)

READ_BATCH = 64  # datagrams read per wake-up on a request port
RECV_SIZE = 2048  # an RRQ with options, or a client's ERROR; ACKs are 4 bytes
RETRY_OPEN = 5.0
SWEEP_INTERVAL = 5.0  # how often idle file descriptors are closed
_UNKNOWN_TID = unknown_tid_error()


class FileStore(Protocol):
    """Where transfers get their files (`edgebox.services.tftp_files.TftpFiles`)."""

    def open(self, name: str, client_ip: str) -> ServedFile | FileError: ...

    def close_idle(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TftpInterfaceStatus:
    interface: str
    netns: str
    state: str  # "opening", "up" or "failed"
    error: str = ""
    port: int = 0  # the bound request port once up


@dataclass(frozen=True, slots=True)
class TftpStatus:
    interfaces: tuple[TftpInterfaceStatus, ...]
    active: int
    max_transfers: int
    started: int
    completed: int
    failed: int
    refused: int  # requests answered with an ERROR, busy ones included
    refused_busy: int
    dropped: int  # requests ignored (retransmitted RRQs, ERRORs on port 69, ...)
    bytes_sent: int  # DATA payload of ended transfers, retransmissions included
    retransmits: int
    send_dropped: int  # datagrams dropped because a socket's send buffer was full
    outcomes: dict[str, int] = field(default_factory=dict)  # ended transfers by outcome


@dataclass(slots=True)
class _Counters:
    started: int = 0
    completed: int = 0
    failed: int = 0
    bytes_sent: int = 0
    retransmits: int = 0
    send_dropped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def server_config(settings: TftpSettings) -> TftpServerConfig:
    """The core's configuration from the `tftp:` settings."""
    limits = TransferLimits(
        max_blksize=settings.max_blksize,
        max_windowsize=settings.max_windowsize,
        default_timeout=settings.timeout,
        max_retransmits=settings.retries,
    )
    return TftpServerConfig(limits=limits, max_transfers=settings.max_transfers)


class _RequestPort:
    """The port-69 socket of one endpoint."""

    def __init__(
        self,
        listener: TftpListener,
        endpoint: TftpEndpoint,
        sock: socket.socket,
        factory: NetnsSocketFactory,
    ) -> None:
        self.listener = listener
        self.endpoint = endpoint
        self.sock = sock
        self.factory = factory

    def readable(self) -> None:
        for _ in range(READ_BATCH):
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(RECV_SIZE, PKTINFO_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("tftp receive error interface=%s error=%s", self.endpoint.interface, exc)
                return
            local = request_destination(ancdata, self.endpoint.address)
            self.listener.request(self, data, (addr[0], addr[1]), local)

    def send(self, packet: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(packet, addr)
        except OSError as exc:
            log.debug("tftp send failed to=%s:%d error=%s", addr[0], addr[1], exc)


class _Transfer:
    """One running transfer: its socket, its timer and the core's `ReadTransfer`."""

    __slots__ = (
        "client",
        "filename",
        "listener",
        "loop",
        "port",
        "sock",
        "source",
        "started_at",
        "timer",
        "timer_at",
        "transfer",
    )

    def __init__(
        self,
        listener: TftpListener,
        port: _RequestPort,
        start: StartTransfer,
        sock: socket.socket,
        source: ServedFile,
    ) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.port = port
        self.client = start.client_addr
        self.filename = start.filename
        self.transfer = start.transfer
        self.sock = sock
        self.source = source
        self.started_at = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def readable(self) -> None:
        # One datagram per wake-up: a transfer's client sends one ACK per window and waits, so
        # a second read would almost always fail with EAGAIN, and that raised exception costs
        # about 1.2 us, 6 % of a lock-step block (bench/README.md). Should more be queued, the
        # selector is level-triggered and calls again on the next loop turn.
        try:
            data, addr = self.sock.recvfrom(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("tftp receive error client=%s:%d error=%s", *self.client, exc)
            return
        if addr != self.client:
            # RFC 1350 section 4: answer the stranger, leave the transfer alone.
            self.send_to(_UNKNOWN_TID, addr)
            return
        transfer = self.transfer
        packets = transfer.receive(data, self.loop.time())
        if packets:
            self.send(packets)
        if transfer.done:
            self.finish()
        else:
            self.arm()

    def send(self, packets: Sequence[bytes]) -> None:
        sendto, client = self.sock.sendto, self.client
        for packet in packets:
            try:
                sendto(packet, client)
            except BlockingIOError:
                self.listener.counters.send_dropped += 1  # the timer resends it
            except OSError as exc:
                log.debug("tftp send failed client=%s:%d error=%s", *client, exc)

    def send_to(self, packet: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(packet, addr)
        except OSError as exc:
            log.debug("tftp send failed to=%s:%d error=%s", addr[0], addr[1], exc)

    def arm(self) -> None:
        deadline = self.transfer.get_timer()
        if deadline is None:
            self._cancel_timer()
            return
        if self.timer is not None:
            if self.timer_at <= deadline:
                return  # fires early, finds nothing due, re-arms for the later deadline
            self.timer.cancel()
        self.timer = self.loop.call_at(deadline, self.on_timer)
        self.timer_at = deadline

    def on_timer(self) -> None:
        self.timer = None
        # call_at may fire a hair before `when` (clock resolution): never pass an earlier now.
        packets = self.transfer.handle_timer(max(self.loop.time(), self.timer_at))
        if packets:
            self.send(packets)
        if self.transfer.done:
            self.finish()
        else:
            self.arm()

    def abort(self, message: str) -> None:
        self.send(self.transfer.abort(message))
        self.finish()

    def finish(self) -> None:
        self._cancel_timer()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.source.close()
        self.listener.ended(self)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class TftpListener:
    """Serves TFTP on `endpoints` with files from `files`, until cancelled."""

    def __init__(
        self,
        endpoints: Sequence[TftpEndpoint],
        files: FileStore,
        config: TftpServerConfig | None = None,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.config = config or TftpServerConfig()
        self.counters = _Counters()
        self._files = files
        self._server = TftpServer(self.config)
        self._transfers: set[_Transfer] = set()
        self._interfaces: dict[TftpEndpoint, TftpInterfaceStatus] = {
            ep: TftpInterfaceStatus(ep.interface, ep.netns, "opening") for ep in self.endpoints
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up: dict[TftpEndpoint, asyncio.Event] = {ep: asyncio.Event() for ep in endpoints}
        # Told of every completed transfer (client IP, file): the boot timeline's loader step.
        self.on_completed: Callable[[str, str], None] | None = None

    @classmethod
    def from_settings(cls, settings: TftpSettings, files: FileStore) -> TftpListener:
        endpoints = [TftpEndpoint(i.name, i.netns) for i in settings.interfaces]
        return cls(endpoints, files, server_config(settings))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the listener is not running"
        return self._loop

    async def run(self) -> None:
        """Serve until cancelled; returns at once when no interface is configured."""
        if not self.endpoints:
            return
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as group:
                for endpoint in self.endpoints:
                    name = f"tftp-{endpoint.interface or endpoint.address}"
                    group.create_task(self._serve(endpoint), name=name)
                group.create_task(self._sweep_files(), name="tftp-files")
        finally:
            for transfer in list(self._transfers):  # normally none left: _serve aborts them
                transfer.abort("server shutting down")
            self._files.close()

    async def wait_up(self) -> None:
        """Until every endpoint's request socket is open (tests and start-up logs)."""
        for event in self._up.values():
            await event.wait()

    def status(self) -> TftpStatus:
        stats = self._server.stats()
        counters = self.counters
        return TftpStatus(
            interfaces=tuple(self._interfaces.values()),
            active=len(self._transfers),
            max_transfers=self.config.max_transfers,
            started=counters.started,
            completed=counters.completed,
            failed=counters.failed,
            refused=stats.refused,
            refused_busy=stats.refused_busy,
            dropped=stats.dropped,
            bytes_sent=counters.bytes_sent,
            retransmits=counters.retransmits,
            send_dropped=counters.send_dropped,
            outcomes=dict(counters.outcomes),
        )

    # --- per endpoint ------------------------------------------------------------------

    async def _serve(self, endpoint: TftpEndpoint) -> None:
        factory = NetnsSocketFactory(endpoint.netns)
        try:
            sock = await self._open(endpoint, factory)
            port = _RequestPort(self, endpoint, sock, factory)
            self.loop.add_reader(sock.fileno(), port.readable)
            bound = sock.getsockname()[1]
            self._interfaces[endpoint] = TftpInterfaceStatus(
                endpoint.interface, endpoint.netns, "up", port=bound
            )
            self._up[endpoint].set()
            log.info(
                "tftp listening interface=%s netns=%s address=%s port=%d",
                endpoint.interface or "-",
                endpoint.netns or "-",
                endpoint.address,
                bound,
            )
            try:
                await asyncio.Future()  # serve until cancelled
            finally:
                self.loop.remove_reader(sock.fileno())
                sock.close()
                for transfer in [t for t in self._transfers if t.port is port]:
                    transfer.abort("server shutting down")
        finally:
            factory.close()

    async def _open(self, endpoint: TftpEndpoint, factory: NetnsSocketFactory) -> socket.socket:
        while True:
            try:
                await asyncio.to_thread(factory.start)
                opening = factory.submit(lambda: open_request_socket(endpoint))
                return await asyncio.wrap_future(opening)
            except OSError as exc:
                error = exc.strerror or str(exc)
                self._interfaces[endpoint] = TftpInterfaceStatus(
                    endpoint.interface, endpoint.netns, "failed", error
                )
                log.warning(
                    "tftp cannot listen interface=%s netns=%s port=%d error=%s; retrying",
                    endpoint.interface or "-",
                    endpoint.netns or "-",
                    endpoint.port,
                    error,
                )
                await asyncio.sleep(RETRY_OPEN)

    async def _sweep_files(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self._files.close_idle()

    # --- requests and transfers --------------------------------------------------------

    def request(
        self, port: _RequestPort, data: bytes, client: tuple[str, int], local_ip: str
    ) -> None:
        opened: list[ServedFile] = []

        def resolve(name: str) -> ServedFile | FileError:
            found = self._files.open(name, client[0])
            if not isinstance(found, FileError):
                opened.append(found)
            return found

        decision = self._server.handle_request(data, client, self.loop.time(), resolve)
        if isinstance(decision, StartTransfer):
            self._start(port, decision, opened[0], local_ip)
            return
        for source in opened:  # refused after opening (its first block could not be read)
            source.close()
        if isinstance(decision, Reply):
            level = logging.DEBUG if decision.reason.startswith("server busy") else logging.INFO
            log.log(level, "tftp refused client=%s:%d reason=%s", *client, decision.reason)
            port.send(decision.packet, decision.client_addr)
        elif isinstance(decision, Drop):
            log.debug("tftp dropped client=%s:%d reason=%s", *client, decision.reason)

    def _start(
        self, port: _RequestPort, start: StartTransfer, source: ServedFile, local_ip: str
    ) -> None:
        interface = port.endpoint.interface
        try:
            sock = port.factory.call(lambda: open_transfer_socket(interface, local_ip))
        except (OSError, concurrent.futures.TimeoutError) as exc:
            log.warning(
                "tftp cannot open a transfer socket client=%s:%d error=%s", *start.client_addr, exc
            )
            for packet in start.transfer.abort("server cannot open a socket"):
                port.send(packet, start.client_addr)
            source.close()
            return
        transfer = _Transfer(self, port, start, sock, source)
        self._transfers.add(transfer)
        self.counters.started += 1
        self.loop.add_reader(sock.fileno(), transfer.readable)
        transfer.send(start.packets)
        transfer.arm()

    def ended(self, transfer: _Transfer) -> None:
        self._transfers.discard(transfer)
        result = transfer.transfer.result
        if result is None:  # pragma: no cover - finish() is only called once done
            self._server.release(transfer.client)
            return
        self._count(result)
        log.info(
            "tftp transfer ended client=%s:%d file=%s bytes=%d seconds=%.3f outcome=%s%s",
            *transfer.client,
            transfer.filename,
            result.bytes_acknowledged,
            self.loop.time() - transfer.started_at,
            result.outcome.value,
            "" if result.ok else f" reason={result.reason}",
        )
        if result.ok and self.on_completed is not None:
            self.on_completed(transfer.client[0], transfer.filename)

    def _count(self, result: TransferResult) -> None:
        counters = self.counters
        if result.ok:
            counters.completed += 1
        else:
            counters.failed += 1
        counters.bytes_sent += result.bytes_sent
        counters.retransmits += result.retransmits
        outcome = result.outcome.value
        counters.outcomes[outcome] = counters.outcomes.get(outcome, 0) + 1
