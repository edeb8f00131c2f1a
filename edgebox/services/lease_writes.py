"""Lease writes, coalesced: the lease changes made while the previous lease write commits go to
the database writer as ONE job (one executemany), and all their callers share its commit.

One write is in flight at a time. A commit waits for an fsync (milliseconds), during which
the server handles many turns of the event loop and thousands of packets; their rows wait
here and leave together when the commit in flight is done, so the writer gets one job per
commit instead of one per loop turn. The writer already groups jobs into one transaction;
this removes the per-job cost as well (a future, a savepoint, a thread hand-off, a callback
that sends the ACKs), which matters at thousands of ACKs a second. When idle, a change is
written at the end of the loop turn that made it, as before.
"""

from __future__ import annotations

import asyncio

from edgebox.storage.database import Database
from edgebox.storage.dhcp_store import DhcpStore, LeaseRow, upsert_lease_rows
from edgebox.storage.writer import Tx


class LeaseWriteBatcher:
    def __init__(self, db: Database, store: DhcpStore) -> None:
        self._db = db
        self.store = store
        self._pending: list[LeaseRow] = []
        self._future: asyncio.Future[None] | None = None  # shared by the pending rows
        self._in_flight = False
        self.batches = 0

    def add(self, row: LeaseRow) -> asyncio.Future[None]:
        """Queue `row`; the future resolves once it is committed (or fails with the commit)."""
        if self._future is None:
            loop = asyncio.get_running_loop()
            self._future = loop.create_future()
            if not self._in_flight:
                loop.call_soon(self._flush)  # else `_written` sends them when it is done
        self._pending.append(row)
        return self._future

    def _flush(self) -> None:
        rows, future = self._pending, self._future
        self._pending, self._future = [], None
        assert future is not None

        def job(tx: Tx) -> None:
            upsert_lease_rows(tx.conn, rows, tx.now)

        try:
            written = self._db.submit(job)
        except Exception as exc:  # the writer is closed: shutting down
            future.set_exception(exc)
            return
        self._in_flight = True
        self.batches += 1
        written.add_done_callback(lambda done: self._written(done, future))

    def _written(self, done: asyncio.Future[None], future: asyncio.Future[None]) -> None:
        self._in_flight = False
        _relay(done, future)
        if self._future is not None:  # rows came in meanwhile: they are the next job
            self._flush()


def _relay(done: asyncio.Future[None], future: asyncio.Future[None]) -> None:
    if future.done():
        return
    if done.cancelled():
        future.cancel()
    elif (exc := done.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(None)
