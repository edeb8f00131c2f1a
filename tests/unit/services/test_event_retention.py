"""The event log is kept by age and count, and never loses what the hub has not acknowledged."""

from __future__ import annotations

from edgebox.domain.models import NewEvent
from edgebox.domain.settings import EventSettings
from edgebox.services.event_retention import DAY, EventRetention
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from tests.conftest import FakeClock


async def seqs(store: EventStore) -> list[int]:
    return [e.seq for e in await store.after(0, 100_000)]


async def fill(store: EventStore, clock: FakeClock, count: int, step: float) -> None:
    for i in range(count):
        await store.append(NewEvent("test.event", f"event {i}"))
        clock.advance(step)


async def test_by_age_then_by_count(db: Database, clock: FakeClock) -> None:
    store = EventStore(db)
    await fill(store, clock, 10, DAY)  # one a day for ten days
    retention = EventRetention(EventSettings(keep_days=3.5, keep_count=0), store=store,
                               clock=clock)  # fmt: skip
    # Ten days on, kept: the events of the last 3.5 days (days 7, 8 and 9 after the first).
    assert await retention.prune_once() == 7
    assert await seqs(store) == [8, 9, 10]
    by_count = EventRetention(EventSettings(keep_days=0, keep_count=2), store=store, clock=clock)
    assert await by_count.prune_once() == 1
    assert await seqs(store) == [9, 10]
    assert await by_count.prune_once() == 0


async def test_what_the_hub_has_not_acknowledged_is_kept(db: Database, clock: FakeClock) -> None:
    store = EventStore(db)
    await fill(store, clock, 10, DAY)
    retention = EventRetention(
        EventSettings(keep_days=1, keep_count=1), store=store, clock=clock,
        unacknowledged_from=lambda: 4,  # the hub confirmed 1..3
    )  # fmt: skip
    assert await retention.prune_once() == 3
    assert await seqs(store) == list(range(4, 11))


async def test_a_large_backlog_goes_in_batches(db: Database, clock: FakeClock) -> None:
    store = EventStore(db)

    def job(tx: object) -> None:
        conn = tx.conn  # type: ignore[attr-defined]
        conn.executemany(
            "INSERT INTO events (time, type, level, message, data) VALUES (?, 't', 'info', 'm', "
            "'{}')",
            [(clock.now() - 10 * DAY,) for _ in range(25_000)],
        )

    await db.write(job)
    retention = EventRetention(EventSettings(keep_days=0, keep_count=100), store=store,
                               clock=clock)  # fmt: skip
    assert await retention.prune_once() == 24_900
    assert len(await seqs(store)) == 100
    # By age, batch after batch (a batch is 2,000): all ten days old but the newest event.
    await db.write(job)
    await store.append(NewEvent("test.event", "today"))
    by_age = EventRetention(EventSettings(keep_days=1, keep_count=0), store=store, clock=clock)
    assert await by_age.prune_once() == 25_100
    assert len(await seqs(store)) == 1
