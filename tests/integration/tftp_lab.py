"""edgebox's TFTP adapter for lab tests: the listener on its own event loop in a thread.

The test process stays in the root namespace; the listener opens its sockets inside the lab's
server namespace itself (as `edgebox serve` will), so the real clients in the client namespace
talk to it over the lab's veth pair and nothing touches a real interface.

    with TftpServerThread([TftpEndpoint(net.server_if, net.server_ns)], TftpFiles([root])) as srv:
        lab.exec(net.client_ns, ["curl", ...])
        assert srv.status().completed == 1
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from edgebox.net.netns_sockets import NetnsSocketFactory
from edgebox.net.tftp_listener import FileStore, TftpEndpoint, TftpListener, TftpStatus
from edgebox.wire.tftp import RRQ, TftpServerConfig, encode_request

__all__ = ["TftpServerThread", "hold_transfer", "wait_until"]


class TftpServerThread:
    """Runs a `TftpListener` until the `with` block ends; `status()` reads it safely."""

    def __init__(
        self,
        endpoints: Sequence[TftpEndpoint],
        files: FileStore,
        config: TftpServerConfig | None = None,
    ) -> None:
        self.listener = TftpListener(endpoints, files, config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="tftp-server", daemon=True)

    def __enter__(self) -> TftpServerThread:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the TFTP listener did not come up: {self._error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def status(self) -> TftpStatus:
        async def read() -> TftpStatus:
            return self.listener.status()

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(5)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        task = asyncio.create_task(self.listener.run())
        up = asyncio.create_task(self.listener.wait_up())
        await asyncio.wait([task, up], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises why it stopped
        self._ready.set()
        await self._stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def hold_transfer(client_ns: str, server_ip: str, name: str) -> socket.socket:
    """A client in `client_ns` that requests `name`, takes the first DATA, and stops there:
    it holds one transfer slot until the server gives up on it (or the socket is closed)."""
    factory = NetnsSocketFactory(client_ns)
    try:
        sock = factory.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    finally:
        factory.close()
    sock.settimeout(5)
    sock.sendto(encode_request(RRQ(name, "octet")), (server_ip, 69))
    data, _ = sock.recvfrom(2048)
    if data[:2] != b"\x00\x03":
        sock.close()
        raise AssertionError(f"expected DATA 1 for {name}, got {data[:40]!r}")
    return sock
