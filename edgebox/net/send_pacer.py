"""A smoother for one socket's replies: at most `per_window` datagrams per `window` seconds.

Why: the DHCP server reads up to a batch of requests per wake-up, answers each in ~15 µs,
and sends a commit's ACKs together, so after any pause (a slow fsync, another process on
its core) it can put out 130 replies in a millisecond. A relay with a small receive buffer
drops what it cannot take: bench/dhcp.py's perfdhcp (a relay, ~270 datagrams of buffer)
lost thousands of replies in its own socket that way where Kea, which replies at most ~50
a millisecond, lost a few hundred. The default, 48 a millisecond, is half as much again as
the most this server sustains, so it evens out bursts without limiting the rate; a reply
waits here a millisecond or two at most, and is dropped (as by a full socket buffer) only if
`max_queued` are waiting already.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

Address = tuple[str, int]


class SendPacer:
    def __init__(
        self,
        send: Callable[[bytes, Address], None],
        *,
        per_window: int = 48,
        window: float = 0.001,
        max_queued: int = 4096,
    ) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self.per_window = per_window
        self.window = window
        self.max_queued = max_queued
        self._left = 0  # datagrams the current window still allows
        self._window_end = float("-inf")
        self._queue: deque[tuple[bytes, Address]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0

    def send(self, data: bytes, address: Address) -> None:
        if self._queue:  # others wait already: keep the order
            self._enqueue(data, address)
            return
        now = self._loop.time()
        if now >= self._window_end:
            self._window_end = now + self.window
            self._left = self.per_window
        if self._left > 0:
            self._left -= 1
            self._send(data, address)
        else:
            self._enqueue(data, address)

    def close(self) -> None:
        """Forget what waits (the socket is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()

    def _enqueue(self, data: bytes, address: Address) -> None:
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append((data, address))
        if self._timer is None:
            self._timer = self._loop.call_at(self._window_end, self._drain)

    def _drain(self) -> None:
        self._timer = None
        self._window_end = self._loop.time() + self.window
        self._left = self.per_window
        queue = self._queue
        while queue and self._left > 0:
            self._left -= 1
            data, address = queue.popleft()
            self._send(data, address)
        if queue:
            self._timer = self._loop.call_at(self._window_end, self._drain)
