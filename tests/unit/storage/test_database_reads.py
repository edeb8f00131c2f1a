"""A read that starts after a write's commit sees it, however many reads run at the same time
(the reader connection must never hold an old WAL snapshot open between two reads)."""

from __future__ import annotations

import asyncio
import contextlib

from edgebox.storage.database import Database
from edgebox.storage.writer import Tx


def add_event(tx: Tx) -> None:
    tx.conn.execute("INSERT INTO events (time, type, level, message) VALUES (0, 't', 'info', 'm')")


async def test_reads_see_every_committed_write_under_concurrent_reads(db: Database) -> None:
    async def busy_reader() -> None:
        while True:  # reads of several rows, interleaving with the checks below
            await db.fetchall("SELECT seq FROM events ORDER BY seq LIMIT 50")

    readers = [asyncio.create_task(busy_reader()) for _ in range(10)]
    try:
        for written in range(1, 41):
            await db.write(add_event)
            row = await db.fetchone("SELECT count(*) FROM events")
            assert row is not None and row[0] == written
            rows = await db.fetchall("SELECT seq FROM events")
            assert len(rows) == written
    finally:
        for task in readers:
            task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
