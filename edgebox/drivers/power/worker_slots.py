"""A cap on the worker processes that drivers keep alive (the IPMI driver's pyghmi workers).

Each IPMI driver keeps its worker for the calls that follow, up to `ipmi.IDLE_EXIT` seconds
after the last one, and a worker costs ~30 MiB: a poll round over 500 BMCs would otherwise
leave hundreds of Python processes alive at once. A driver takes a slot before it starts a
worker, and the slot is given back when that process has exited and been reaped, whatever
ended it (a logout, a kill at a deadline, its own idle exit).

When every slot is taken, a caller waits in line (FIFO) and, to make room, the worker that has
been idle longest is asked to end (it logs out first). A driver tells the slots when its worker
is idle between calls (`idle`) and when it is busy again (`busy`); a busy worker is never
asked to end. The wait is the caller's: it runs under the caller's deadline and is given up
cleanly when that passes or the caller is cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable


class WorkerSlots:
    """At most `limit` worker processes alive at once, across every driver that shares this."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a worker limit is at least 1, got {limit}")
        self.limit = limit
        self._live = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._idle: dict[Hashable, Callable[[], None]] = {}  # oldest first

    @property
    def live(self) -> int:
        """Slots taken: workers alive, or starting."""
        return self._live

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def acquire(self) -> None:
        """Take a slot, waiting in line when all are taken. Every acquire is matched by one
        `release`, when the worker it started has exited (or did not start)."""
        if self._live < self.limit and not self.waiting:
            self._live += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._evict_oldest()
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we gave up: pass it on
            raise

    def release(self) -> None:
        """A worker ended: its slot goes to the first caller in line, else it is free."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._live -= 1

    def idle(self, owner: Hashable, end: Callable[[], None]) -> None:
        """`owner`'s worker is alive and idle; `end()` asks it to end (it must not block). If
        a caller is waiting for a slot, it is asked at once."""
        self._idle.pop(owner, None)
        if self.waiting:
            end()
        else:
            self._idle[owner] = end

    def busy(self, owner: Hashable) -> None:
        """`owner`'s worker is in a call, or gone: not to be asked to end."""
        self._idle.pop(owner, None)

    def _evict_oldest(self) -> None:
        if self._idle:
            owner = next(iter(self._idle))
            self._idle.pop(owner)()
