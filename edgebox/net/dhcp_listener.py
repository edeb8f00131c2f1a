"""The asyncio side of the DHCP server: sockets in, decisions out, replies sent.

Short and mechanical on purpose (STYLE.md): every decision is made by `DhcpService`. This
module opens the sockets (in the interface's namespace), feeds each datagram to the service,
and sends what it returns — at once, after the lease's commit (an ACK is never sent before
its lease is durable), or after an ARP probe. An interface that cannot be opened is retried
every few seconds and reported in the DHCP status; it never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from edgebox.net.ack_release import AckRelease
from edgebox.net.arp_probe import ArpProber, open_arp_socket
from edgebox.net.dhcp_socket import open_dhcp_socket
from edgebox.net.interfaces import interface_ipv4, interface_mac
from edgebox.net.netns import run_in_netns
from edgebox.services.dhcp_records import Outgoing
from edgebox.services.dhcp_service import DhcpService, Handled, LinkInfo, LinkSpec

log = logging.getLogger(__name__)

RETRY_OPEN = 5.0
MAX_PROBE_ROUNDS = 3
PROXY_PORT = 4011
# Datagrams read per wake-up before other work gets a turn: small enough that a loop turn
# stays short under load (a lease write needs a few turns to come back, and its ACKs wait
# for it), large enough that the turn's own cost is shared.
READ_BATCH = 64
RECV_SIZE = 4096
PROBE_LISTEN = 2.0  # seconds to collect offers after a rogue-server probe


@dataclass(slots=True)
class _Opened:
    info: LinkInfo
    sockets: dict[int, socket.socket]
    arp: socket.socket | None


class _LinkSocket:
    """One DHCP socket, read directly from the event loop.

    asyncio's datagram transport reads one datagram per loop iteration; under a burst each
    packet then pays a whole iteration (an epoll call, the ready queue). Here a wake-up
    drains up to READ_BATCH datagrams. Replies are sent with a non-blocking sendto; a full
    socket buffer drops the reply, as a lossy link would (the client retransmits).
    """

    def __init__(self, listener: DhcpListener, link: str, port: int, sock: socket.socket):
        self.listener = listener
        self.link = link
        self.port = port
        self.sock = sock
        self.closed = False

    def readable(self) -> None:
        # The per-packet loop of the whole server, so the common case is inline: a reply
        # with nothing to wait for (an OFFER, a NAK) is sent at once; one that waits for a
        # commit or a probe goes to the listener.
        listener, link, port = self.listener, self.link, self.port
        receive, recvfrom = listener.service.receive, self.sock.recvfrom
        for _ in range(READ_BATCH):
            try:
                data, addr = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("dhcp receive error link=%s port=%d error=%s", link, port, exc)
                return
            handled = receive(link, port, data, addr)
            if handled is None:
                continue
            if handled.commit is None and handled.probe_ip is None:
                if handled.reply is not None:
                    self.send(handled.reply)
            else:
                listener.dispatch(self, handled, data, addr, 0)

    def send(self, out: Outgoing) -> None:
        if self.closed:
            return
        try:
            self.sock.sendto(out.data, (out.ip, out.port))
        except OSError as exc:
            log.debug("dhcp send failed link=%s to=%s error=%s", self.link, out.ip, exc)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class DhcpListener:
    def __init__(self, service: DhcpService) -> None:
        self.service = self._service = service
        self._probers: dict[str, ArpProber] = {}
        self._group: asyncio.TaskGroup | None = None
        self._waiting: dict[asyncio.Future[None], list[tuple[_LinkSocket, Handled]]] = {}
        # A commit's ACKs leave through this (made in the running loop, as the listener is)
        self._acks: AckRelease[tuple[_LinkSocket, Handled]] = AckRelease(_send_ack)

    async def run(self) -> None:
        links = self._service.links()
        if not links:
            return
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for spec in links:
                    group.create_task(self._serve_link(spec), name=f"dhcp-{spec.name}")
                group.create_task(self._service.run(), name="dhcp-service")
        finally:
            self._acks.close()  # no timer left to send on closed sockets

    async def _serve_link(self, spec: LinkSpec) -> None:
        while True:
            try:
                opened = await asyncio.to_thread(run_in_netns, spec.netns, lambda: _open(spec))
                break
            except OSError as exc:
                self._service.link_failed(spec, f"{exc.strerror or exc}")
                await asyncio.sleep(RETRY_OPEN)
        loop = asyncio.get_running_loop()
        sockets = [
            _LinkSocket(self, spec.name, port, sock) for port, sock in opened.sockets.items()
        ]
        try:
            for link_socket in sockets:
                loop.add_reader(link_socket.sock.fileno(), link_socket.readable)
            if opened.arp is not None:
                self._probers[spec.name] = ArpProber(opened.arp, opened.info.mac)
            self._service.link_up(opened.info)
            await self._watch_for_other_servers(spec)
        finally:
            prober = self._probers.pop(spec.name, None)
            if prober is not None:
                prober.close()
            for link_socket in sockets:
                loop.remove_reader(link_socket.sock.fileno())
                link_socket.close()

    async def _watch_for_other_servers(self, spec: LinkSpec) -> None:
        """The rogue-server probe: a DISCOVER at start and every interval; every OFFER that
        is not ours goes to the service, which records it and raises a warning."""
        interval = self._service.rogue_probe_interval
        if not interval:
            await asyncio.Event().wait()  # serve until cancelled
        while True:
            try:
                await self._probe_for_servers(spec)
            except OSError as exc:
                log.warning("rogue-server probe failed link=%s error=%s", spec.name, exc)
            await asyncio.sleep(interval)

    async def _probe_for_servers(self, spec: LinkSpec) -> None:
        probe = self._service.make_probe(spec.name)
        sock = await asyncio.to_thread(
            run_in_netns, spec.netns, lambda: open_dhcp_socket(spec.name, 68)
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendto(sock, probe.data, (probe.ip, probe.port))
            async with asyncio.timeout(PROBE_LISTEN):
                while True:
                    data, addr = await loop.sock_recvfrom(sock, 4096)
                    await self._service.offer_seen(spec.name, data, addr)
        except TimeoutError:
            pass
        finally:
            sock.close()

    def dispatch(
        self, proto: _LinkSocket, handled: Handled, data: bytes, addr: tuple[str, int], round_: int
    ) -> None:
        """Send ``handled.reply`` when it may go: after its ARP probe, after its commit."""
        if handled.probe_ip is not None and proto.link in self._probers and self._group:
            self._group.create_task(self._probe_then_send(proto, handled, data, addr, round_))
        elif handled.commit is not None:
            # The ACKs of one loop turn share one commit future: one callback sends them all
            # (a callback per ACK would cost a loop turn's scheduling each).
            waiting = self._waiting.get(handled.commit)
            if waiting is None:
                waiting = self._waiting[handled.commit] = []
                handled.commit.add_done_callback(self._committed)
            waiting.append((proto, handled))
        elif handled.reply is not None:
            proto.send(handled.reply)

    def _committed(self, future: asyncio.Future[None]) -> None:
        waiting = self._waiting.pop(future, ())
        if future.cancelled() or future.exception() is not None:
            for _, handled in waiting:
                self._service.commit_failed(handled, future)
            return
        self._acks.add(waiting)

    async def _probe_then_send(
        self, proto: _LinkSocket, handled: Handled, data: bytes, addr: tuple[str, int], round_: int
    ) -> None:
        ip = handled.probe_ip
        assert ip is not None
        holder = await self._probers[proto.link].holder(ip, self._service.arp_wait)
        if holder is None:
            handled.probe_ip = None
            self.dispatch(proto, handled, data, addr, round_)
            return
        self._service.address_in_use(proto.link, ip, holder)
        if round_ + 1 < MAX_PROBE_ROUNDS:
            again = self._service.receive(proto.link, proto.port, data, addr)
            if again is not None:
                self.dispatch(proto, again, data, addr, round_ + 1)


def _send_ack(item: tuple[_LinkSocket, Handled]) -> None:
    proto, handled = item
    if handled.reply is not None:
        proto.send(handled.reply)


def _open(spec: LinkSpec) -> _Opened:
    """Runs in the link's namespace: the sockets and the interface's facts."""
    address, prefix = interface_ipv4(spec.name)
    mac = interface_mac(spec.name)
    ports = [67, PROXY_PORT] if spec.mode == "proxy" else [67]
    sockets: dict[int, socket.socket] = {}
    try:
        for port in ports:
            sockets[port] = open_dhcp_socket(spec.name, port)
        arp = open_arp_socket(spec.name) if spec.arp_probe else None
    except OSError:
        for sock in sockets.values():
            sock.close()
        raise
    return _Opened(LinkInfo(spec.name, address, prefix, mac), sockets, arp)
