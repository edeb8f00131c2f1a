"""Live delivery of committed events to in-process subscribers (WebSockets, later webhooks).

The database is the source of truth; the bus only carries what was committed, in sequence
order. A subscriber that falls too far behind is cut off with `Lagging` instead of making the
process hold an unbounded queue; it reconnects and catches up from the log by its last seq.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from edgebox.domain.models import Event

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000


class Lagging(Exception):
    """The subscriber fell more than QUEUE_LIMIT events behind."""


class Ended(Exception):
    """The subscription was ended (its consumer went away, or the process is stopping)."""


_END = object()


class Subscription:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | object | None] = asyncio.Queue()
        self.lagging = False

    def _offer(self, event: Event) -> None:
        if self.lagging:
            return
        if self._queue.qsize() >= QUEUE_LIMIT:
            self.lagging = True
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(event)

    async def next(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise Lagging(f"subscriber fell more than {QUEUE_LIMIT} events behind")
        if event is _END:
            raise Ended("the subscription has ended")
        assert isinstance(event, Event)
        return event

    def end(self) -> None:
        """Wake the consumer with `Ended`."""
        self._queue.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.next()

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subscribers.add(sub)
        return sub

    def publish(self, events: list[Event]) -> None:
        """Called by the database writer right after a commit, on the event loop."""
        for sub in list(self._subscribers):
            for event in events:
                sub._offer(event)

    def end_all(self) -> None:
        for sub in list(self._subscribers):
            sub.end()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
