"""Reading the event log by cursor, and appending events that belong to no machine change."""

from __future__ import annotations

from edgebox.domain.models import Event, NewEvent
from edgebox.storage.database import Database
from edgebox.storage.events_sql import EVENT_COLUMNS, event_from_row
from edgebox.storage.writer import Tx


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

    async def append(self, event: NewEvent) -> Event:
        def job(tx: Tx) -> Event:
            return tx.emit(event)

        return await self._db.write(job)
