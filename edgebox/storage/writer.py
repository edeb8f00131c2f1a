"""The one writer: every change to the database goes through here, in committed groups.

Theory of operation
-------------------
A caller hands `write()` a plain function `fn(tx) -> T` that runs SQL on the write connection
and awaits its result. The writer task takes every job that is waiting, runs them one after
another inside ONE transaction on its own thread (each job in a SAVEPOINT, so a job that
raises is rolled back alone and gets its exception), commits once, and only then resolves the
callers' futures. While one group is being committed (the fsync), new jobs queue up and form
the next group: under load N writes cost far fewer than N fsyncs, and when idle a single write
commits at once.

Nothing is acknowledged before its commit: a caller whose `write()` returned knows its change
is on disk (with synchronous=FULL, through a power cut).

When the storage fails (the disk is full, an I/O error, a lock held past the busy timeout:
see `failures.py`) the writer does not: the job that met the error gets `StorageUnavailable`
and is rolled back to its savepoint; if that cannot be done (SQLite may have rolled back the
whole transaction by itself) or BEGIN or COMMIT fails, the whole group is rolled back and each
of its jobs gets the error. Groups committed earlier are untouched, and the next group starts
afresh, so writes succeed again by themselves once space is back. `health` says whether
writes fail now, and logs each episode once.

Why a thread with the standard `sqlite3` module here and not aiosqlite: aiosqlite hops to its
thread for every statement, and a group-committed batch wants all of its statements run in one
hop without the event loop interleaving. Reads, which are many small independent awaits, use
aiosqlite (see `database.py`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgebox.domain.errors import StorageUnavailable
from edgebox.domain.models import Event, NewEvent
from edgebox.storage.events_sql import insert_event
from edgebox.storage.failures import StorageHealth, group_failure, storage_failure

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_GROUP = 512


@dataclass(slots=True)
class Tx:
    """What a write job gets: the connection, the time of the group, and an event sink."""

    conn: sqlite3.Connection
    now: float
    events: list[Event] = field(default_factory=list)

    def emit(self, event: NewEvent) -> Event:
        """Append an event in this job's transaction; it is published after the commit."""
        stored = insert_event(self.conn, event, self.now)
        self.events.append(stored)
        return stored


@dataclass(slots=True)
class _Job:
    fn: Callable[[Tx], Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    events: list[Event] = field(default_factory=list)


class WriterClosed(Exception):
    """A write was attempted after the database was closed."""


class GroupCommitWriter:
    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Callable[[], float],
        on_commit: Callable[[list[Event]], None] | None = None,
        linger: float = 0.0,
        *,
        path: Path,
    ) -> None:
        self._conn = conn
        self._path = path  # the database file, for messages that say where
        self._clock = clock
        self._on_commit = on_commit
        self._linger = linger
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "edgebox-writer")
        self._closed = False
        self.commits = 0
        self.jobs_done = 0
        self.health = StorageHealth(clock)

    def set_commit_listener(self, on_commit: Callable[[list[Event]], None]) -> None:
        self._on_commit = on_commit

    async def write(self, fn: Callable[[Tx], T]) -> T:
        return await self.submit(fn)

    def submit(self, fn: Callable[[Tx], T]) -> asyncio.Future[T]:
        """Queue a write and return its future at once, without awaiting it.

        For hot paths that must keep handling packets while commits are in flight (the DHCP
        server sends each ACK from a done-callback of its lease write's future).
        """
        if self._closed:
            raise WriterClosed("the database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(fn, future))
        return future

    async def run(self) -> None:
        """The writer task. Cancel it to stop: the group in flight is committed first."""
        try:
            while True:
                first = await self._queue.get()
                if self._linger:
                    await asyncio.sleep(self._linger)
                batch = [first]
                while len(batch) < MAX_GROUP and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._commit_group(batch)
        finally:
            self._closed = True
            self._fail_waiting()

    async def _commit_group(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, self._run_batch, batch)
        try:
            failure = await asyncio.shield(work)
        except asyncio.CancelledError:
            # Shutting down: the batch still commits on its thread; wait, then answer.
            self._settle(batch, await work)
            raise
        self._settle(batch, failure)

    def _run_batch(self, batch: list[_Job]) -> StorageUnavailable | None:
        """Run and commit `batch` (on the writer's thread): afterwards every job holds a
        result or an error. Returns the storage failure met, if any."""
        conn = self._conn
        tx_time = self._clock()
        try:
            self._begin()
            for job in batch:
                conn.execute("SAVEPOINT job")
                lost = self._run_job(job, Tx(conn, tx_time))
                if lost is not None:
                    return self._fail_group(batch, lost)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # BEGIN, SAVEPOINT, COMMIT: the group's own statements
            return self._fail_group(batch, group_failure(exc, self._path))
        self.commits += 1
        self.jobs_done += len(batch)
        return next((j.error for j in batch if isinstance(j.error, StorageUnavailable)), None)

    def _begin(self) -> None:
        if self._conn.in_transaction:  # the ROLLBACK of a failed group failed as well
            self._conn.execute("ROLLBACK")
        self._conn.execute("BEGIN IMMEDIATE")

    def _run_job(self, job: _Job, tx: Tx) -> StorageUnavailable | None:
        """Run one job in its savepoint. Returns why the whole transaction is lost, if it is."""
        try:
            job.result = job.fn(tx)
            self._conn.execute("RELEASE job")
        except Exception as exc:  # the job's failure, or the storage's: undo the job alone
            job.result = None
            job.error = storage_failure(exc, self._path) or exc
            return self._undo_job(job)
        job.events = tx.events
        return None

    def _undo_job(self, job: _Job) -> StorageUnavailable | None:
        conn = self._conn
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error as exc:
                return group_failure(exc, self._path)
            return None
        # After SQLITE_FULL, IOERR, BUSY or NOMEM inside a statement SQLite may roll back the
        # whole transaction by itself (https://sqlite.org/lang_transaction.html, "Response To
        # Errors Within A Transaction"): the savepoint went with it, and the earlier jobs'
        # changes too.
        if isinstance(job.error, StorageUnavailable):
            return job.error
        return StorageUnavailable(
            f"the database ended the write transaction after an error ({job.error}); "
            "the writes of its group were not stored",
            "transaction_lost",
        )

    def _fail_group(self, batch: list[_Job], failure: StorageUnavailable) -> StorageUnavailable:
        """Nothing of the group is stored: every job fails (a job that failed on its own keeps
        its own error), and the connection is left with no transaction open."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the next group's `_begin` tries again
                log.debug("rollback of a failed group failed error=%s", exc)
        for job in batch:
            job.result, job.events = None, []
            if job.error is None:
                job.error = failure
        return failure

    def _settle(self, batch: list[_Job], failure: StorageUnavailable | None) -> None:
        if failure is None:
            self.health.succeeded()
        else:
            failed = sum(1 for job in batch if isinstance(job.error, StorageUnavailable))
            self.health.failed(failure, failed)
        committed: list[Event] = []
        for job in batch:
            if job.future.done():  # the caller was cancelled; its write stands anyway
                if job.error is None:
                    committed.extend(job.events)
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
                committed.extend(job.events)
        if committed and self._on_commit is not None:
            self._on_commit(committed)

    def _fail_waiting(self) -> None:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(WriterClosed("the database closed before this write"))

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True)
