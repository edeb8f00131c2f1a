"""A thread that lives inside one network namespace and creates sockets there on request.

`run_in_netns` (netns.py) starts a thread per call, which is right for a listener's few sockets
but slow for TFTP, which opens a socket per transfer (its TID, RFC 1350): a thread start and a
setns(2) for each of a hundred clients booting at once. `NetnsSocketFactory` enters the
namespace once, on a thread of its own that stays there, and runs socket-creating functions
one after another. The event loop calls `call()` (blocking, for the per-transfer socket: the
round trip is tens of microseconds) or awaits `submit()` through `asyncio.wrap_future` (at
start-up). With netns "" there is no thread: functions run on the caller's thread.

Only socket creation should run here: the thread is in another namespace, so anything that
looks at interfaces, routes or files under /proc/net sees that namespace, not the host's.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from edgebox.net.netns import NETNS_DIR, NetnsError, enter_netns

__all__ = ["NetnsSocketFactory"]

T = TypeVar("T")

CALL_TIMEOUT = 5.0

_Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


class NetnsSocketFactory:
    """Runs functions inside network namespace `netns` on one long-lived thread."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Enter the namespace; raises `NetnsError` if it cannot be entered. Idempotent."""
        if not self.netns or self._thread is not None:
            return
        if self._closed:
            raise NetnsError(0, f"the socket factory of namespace {self.netns!r} is closed")
        path = os.path.join(NETNS_DIR, self.netns)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetnsError(
                2, f"no network namespace {self.netns!r} ({path} does not exist)"
            ) from None
        entered: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._serve, args=(fd, entered), name=f"netns-sockets-{self.netns}", daemon=True
        )
        thread.start()
        try:
            entered.result()
        except BaseException:
            thread.join()
            raise
        self._thread = thread

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn` in the namespace; its result or exception arrives in the future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(NetnsError(0, f"socket factory {self.netns!r} is closed"))
            return future
        if not self.netns:
            _run(fn, future)
            return future
        if self._thread is None:
            self.start()
        self._jobs.put((fn, future))
        return future

    def call(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run `fn` in the namespace and wait for its result (raises what `fn` raised)."""
        return self.submit(fn).result(timeout)

    def close(self) -> None:
        """Stop the thread (after the jobs already queued). Idempotent."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _serve(self, fd: int, entered: concurrent.futures.Future[None]) -> None:
        try:
            enter_netns(fd)
        except BaseException as exc:  # handed to start()
            entered.set_exception(exc)
            return
        finally:
            os.close(fd)
        entered.set_result(None)
        while (job := self._jobs.get()) is not None:
            _run(*job)


def _run(fn: Callable[[], T], future: concurrent.futures.Future[T]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except BaseException as exc:  # handed to the caller through the future
        future.set_exception(exc)
