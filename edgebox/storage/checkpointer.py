"""Checkpointing the WAL from a connection of its own, off the writer's commits.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past its threshold:
that commit then copies the WAL's pages into the database file and fsyncs it, and every write
queued behind it waits as well. Under 1,000 commissioning agents (bench/commission.py) that
happened a few times a second, and made the slowest commits 20-300 ms.

While edgebox serves, `Checkpointer` runs a PASSIVE checkpoint every `interval` seconds on its
own connection and thread. A PASSIVE checkpoint copies what no reader still needs and never
waits for the writer or a reader; the writer does not wait for it either (WAL mode lets one
checkpointer and one writer work at once). Once a checkpoint has copied the whole WAL, the
writer's next transaction starts the WAL file over from its beginning.

The writer's own automatic checkpoint stays on as a backstop at `BACKSTOP_PAGES` (the
database is also opened by short-lived commands, which run no `Checkpointer`): while this runs
the WAL never gets near it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

BACKSTOP_PAGES: Final = 16_384  # 64 MiB of 4 KiB pages: the writer checkpoints past this


class Checkpointer:
    def __init__(self, path: Path, commits: Callable[[], int], interval: float = 0.5) -> None:
        """`commits` counts the writer's commits: a round with none since the last is skipped,
        so an idle edgebox wakes no thread for this."""
        self._path = path
        self._commits = commits
        self._interval = interval
        self._failing = False

    async def run(self) -> None:
        """Checkpoint until cancelled; a checkpoint in progress is finished first."""
        conn = await asyncio.to_thread(_open, self._path)
        seen = -1
        try:
            while True:
                await asyncio.sleep(self._interval)
                commits = self._commits()
                if commits == seen:
                    continue
                seen = commits
                work = asyncio.ensure_future(asyncio.to_thread(self._checkpoint, conn))
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:
                    await work  # the connection is closed only once it is idle
                    raise
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # disk full, I/O error: the next round tries again
            # Once per run of failures, not every round (the writer logs why writes fail).
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "WAL checkpoint failed error=%s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("WAL checkpoints succeed again")
            self._failing = False
        log.debug("WAL checkpoint busy=%d wal_pages=%d copied=%d", busy, wal_pages, copied)


def _open(path: Path) -> sqlite3.Connection:
    # Used by one thread at a time (each round's worker thread), never two at once.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn
