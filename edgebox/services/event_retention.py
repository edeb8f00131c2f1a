"""How long the event log is kept: by age and by count, in batches, off the hot path.

Every `events.prune_interval` seconds the oldest events beyond `events.keep_days` or the newest
`events.keep_count` are deleted, 2,000 per transaction (the writer, and so DHCP's ACKs, wait
for each) until none is left. Events the hub has
not acknowledged are never deleted: the hub sync part passes `unacknowledged_from` (the first
sequence number the hub has not confirmed; None while no hub is enrolled), and when that is
what holds the log back, the log says so once per round — a site cut off from its hub keeps
its whole outbox, and its disk use grows until the link returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edgebox.domain.settings import EventSettings
from edgebox.services.clock import Clock
from edgebox.storage.event_store import PRUNE_BATCH, EventStore

log = logging.getLogger(__name__)
DAY = 86_400.0


class EventRetention:
    def __init__(
        self,
        settings: EventSettings,
        *,
        store: EventStore,
        clock: Clock,
        unacknowledged_from: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._floor = unacknowledged_from

    async def prune_once(self) -> int:
        """Delete what the policy says may go; the number deleted."""
        s = self._settings
        older_than = self._clock.now() - s.keep_days * DAY if s.keep_days else 0.0
        floor = self._floor()
        total, held = 0, False
        while True:
            deleted, held = await self._store.prune(older_than, s.keep_count, floor)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        if total:
            log.info("events pruned count=%d keep_days=%g keep_count=%d", total, s.keep_days,
                     s.keep_count)  # fmt: skip
        if held:
            log.warning("events kept beyond the retention policy: the hub has not acknowledged "
                        "them yet (from seq=%s); the log shrinks once the hub link is back",
                        floor)  # fmt: skip
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception:
                log.exception("pruning the event log failed; trying again next round")
            await asyncio.sleep(self._settings.prune_interval)
