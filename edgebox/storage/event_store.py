"""Reading the event log by cursor, and appending events that belong to no machine change."""

from __future__ import annotations

from edgebox.domain.models import Event, NewEvent
from edgebox.storage.database import Database
from edgebox.storage.events_sql import EVENT_COLUMNS, event_from_row
from edgebox.storage.writer import Tx

PRUNE_BATCH = 2_000  # rows a transaction: the writer (DHCP's ACKs) waits for it


class EventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def after(self, seq: int, limit: int, machine: str | None = None) -> list[Event]:
        """Events with a sequence number above `seq`, oldest first."""
        if machine is None:
            rows = await self._db.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE machine = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (machine, seq, limit),
            )
        return [event_from_row(r) for r in rows]

    async def of_mac(self, prefix: str, mac: str, limit: int) -> list[Event]:
        """The newest `limit` events whose type starts with `prefix` and whose data names
        `mac`, oldest first (the boot timeline)."""
        rows = await self._db.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE type >= ? AND type < ? "
            "AND json_extract(data, '$.mac') = ? ORDER BY seq DESC LIMIT ?",
            (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1), mac, limit),
        )
        return [event_from_row(r) for r in reversed(rows)]

    async def last_seq(self) -> int:
        row = await self._db.fetchone("SELECT coalesce(max(seq), 0) FROM events")
        return int(row[0]) if row else 0

    async def prune(
        self, older_than: float, keep_newest: int, below_seq: int | None
    ) -> tuple[int, bool]:
        """Delete events older than `older_than` (a time) or beyond the newest `keep_newest`
        (0: no such limit), never one at or above `below_seq` (None: no such floor). At most
        PRUNE_BATCH a call, oldest first, so a long-idle log is cleaned in short transactions.
        Returns how many went, and whether the floor kept some the policy would delete."""

        def job(tx: Tx) -> tuple[int, bool]:
            conn = tx.conn
            top = int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
            by_count = top - keep_newest + 1 if keep_newest else 0
            # Only the oldest batch is looked at (events has no index on time, and this runs
            # on the writer's thread): the cut by age within it, the rest next call.
            by_time = conn.execute(
                "SELECT coalesce(max(seq) + 1, 0) FROM (SELECT seq, time FROM events "
                "ORDER BY seq LIMIT ?) WHERE time < ?",
                (PRUNE_BATCH, older_than),
            ).fetchone()[0]
            wanted = max(by_count, int(by_time))
            cut = wanted if below_seq is None else min(wanted, below_seq)
            deleted = conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq < ? "
                "ORDER BY seq LIMIT ?)",
                (cut, PRUNE_BATCH),
            ).rowcount
            held = cut < wanted and bool(
                conn.execute("SELECT 1 FROM events WHERE seq < ? LIMIT 1", (wanted,)).fetchone()
            )
            return int(deleted), held

        return await self._db.write(job)

    async def append(self, event: NewEvent) -> Event:
        def job(tx: Tx) -> Event:
            return tx.emit(event)

        return await self._db.write(job)
