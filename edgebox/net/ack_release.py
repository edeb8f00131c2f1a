"""Letting a commit's ACKs out at a bounded rate, without ever falling behind.

Why: ACKs leave only once their leases are committed, so they come in batches, one per
commit, and a commit that waited on a slow disk (on a busy machine an fsync takes hundreds
of milliseconds) releases hundreds at once. Sent back to back they reach the relay at
~200,000 a second, and a relay with a small buffer drops most of them: under CPU
contention bench/dhcp.py's perfdhcp (a relay, ~170 datagrams of buffer) lost thousands of
edgebox's ACKs per run in its own socket, and almost none of Kea's, which answers each
request as it comes.

How: a token bucket. Sending costs a token; tokens come back at `rate` a second, up to
`burst`, and time that passes while the event loop is busy elsewhere still earns them, so
however late the loop comes back, each turn may send up to `burst` (a turn reads at most a
batch of requests, so it never makes more ACKs than that: the queue cannot grow without
bound). What the budget does not allow waits for a timer, a millisecond or so.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class AckRelease(Generic[T]):
    def __init__(self, send: Callable[[T], None], *, rate: float = 32_000.0, burst: int = 64):
        self._send = send
        self._loop = asyncio.get_running_loop()
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = self._loop.time()
        self._pending: deque[T] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, items: Iterable[T]) -> None:
        """Queue ``items`` (in order, after any that wait) and send what the budget allows."""
        self._pending.extend(items)
        self._drain()

    def __len__(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()

    def _drain(self) -> None:
        now = self._loop.time()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        pending = self._pending
        while pending and self._tokens >= 1:
            self._tokens -= 1
            self._send(pending.popleft())
        if pending and self._timer is None:
            wait = (1 - self._tokens) / self.rate  # until a token is back; the loop rounds up
            self._timer = self._loop.call_later(wait, self._timed)

    def _timed(self) -> None:
        self._timer = None
        self._drain()
