"""How long the event loop was kept from running: a ticker that records how late it woke.

A coroutine sleeps `period` seconds again and again; a wake-up later than asked means the loop
thread was busy or blocked (by code on the loop: what a test wants to catch) or was waiting
for a CPU (other processes' load: what it does not). The kernel counts the second kind per
thread (the run-queue delay in /proc/self/task/TID/schedstat), so `worst_own` leaves it out.
`worst` is the plain figure.

    async with LatenessProbe() as probe:
        await driver.query()
    probe.worst_own, probe.worst   # seconds
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from types import TracebackType


def _schedstat() -> Path | None:
    """This thread's scheduler statistics file, where the kernel keeps them."""
    path = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
    return path if path.exists() else None


def _run_queue_delay(schedstat: Path | None) -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (0 when not known)."""
    if schedstat is None:
        return 0.0
    try:
        return int(schedstat.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class LatenessProbe:
    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self.worst_own = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        schedstat = _schedstat()
        while True:
            waited_before = _run_queue_delay(schedstat)  # first: its own delays count as waits
            asked = loop.time() + self.period
            await asyncio.sleep(self.period)
            late = loop.time() - asked
            waited = _run_queue_delay(schedstat) - waited_before
            self.worst = max(self.worst, late)
            self.worst_own = max(self.worst_own, late - waited)
            self.ticks += 1

    async def __aenter__(self) -> LatenessProbe:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def __str__(self) -> str:
        return (
            f"loop lateness over {self.ticks} ticks: worst {self.worst * 1000:.1f} ms,"
            f" {self.worst_own * 1000:.1f} ms without waits for a CPU"
        )
