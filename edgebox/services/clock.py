"""Time, injected: services read the clock through this so tests can control it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall clock, for records)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start (for timeouts and durations)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
