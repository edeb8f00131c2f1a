"""The event log as the API sees it: read by cursor, follow live."""

from __future__ import annotations

from edgebox.domain.models import Event, NewEvent
from edgebox.services.event_bus import EventBus, Subscription
from edgebox.storage.event_store import EventStore


class EventService:
    def __init__(self, store: EventStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def after(self, seq: int, limit: int, machine: str | None = None) -> list[Event]:
        return await self._store.after(seq, limit, machine)

    async def append(self, event: NewEvent) -> Event:
        return await self._store.append(event)

    async def boot_events(self, mac: str, limit: int = 200) -> list[Event]:
        return await self._store.of_mac("boot.", mac, limit)

    async def last_seq(self) -> int:
        return await self._store.last_seq()

    def subscribe(self) -> Subscription:
        """Subscribe BEFORE reading the backlog, then skip live events already read: that way
        nothing committed between the two is missed."""
        return self._bus.subscribe()

    def end_streams(self) -> None:
        """Wake every live follower so it can close (shutdown)."""
        self._bus.end_all()
