"""The writer survives storage errors: a full disk, an I/O error or a lock inside a statement, at
BEGIN or at COMMIT fails only the writes it touched, with `StorageUnavailable`; what was
committed before stays; the next write commits; each episode is logged once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edgebox.domain.errors import StorageUnavailable
from edgebox.domain.models import Event, NewEvent
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx
from tests.conftest import FakeClock
from tests.unit.storage.flaky import DISK_FULL, IO_ERROR, FlakyConnection, flaky_database

Job = Callable[[Tx], Any]


def insert_user(name: str) -> Job:
    def job(tx: Tx) -> int:
        cur = tx.conn.execute(
            "INSERT INTO users (username, role, created_at) VALUES (?, 'viewer', ?)",
            (name, tx.now),
        )
        return int(cur.lastrowid or 0)

    return job


def insert_user_with_event(name: str) -> Job:
    """Also writes an event: a statement (INSERT INTO events) that `insert_user` has not."""

    def job(tx: Tx) -> None:
        insert_user(name)(tx)
        tx.emit(NewEvent("user.created", f"user {name}"))

    return job


async def users(db: Database) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT username FROM users ORDER BY id")]


async def one_group(db: Database, *jobs: Job) -> list[Any]:
    """Submitted in one loop turn to an idle writer: they run as one group."""
    futures = [db.submit(job) for job in jobs]
    async with asyncio.timeout(10):  # a failure must never leave a caller waiting
        return await asyncio.gather(*futures, return_exceptions=True)


def storage_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("edgebox.storage") and r.levelno == level
    ]


@pytest.fixture
async def flaky(
    tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[Database, FlakyConnection]]:
    async with flaky_database(tmp_path / "edgebox.db", clock) as pair:
        yield pair


async def test_a_real_full_disk_fails_the_group_and_the_writer_goes_on(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite's own SQLITE_FULL: the database may not grow past its current size and a
    # 200 kB name needs new pages. SQLite then rolls back the whole transaction by itself, so
    # the job's ROLLBACK TO finds no savepoint (what used to end the writer and the process).
    await db.write(insert_user("before"))

    def limit_growth(tx: Tx) -> None:
        pages = tx.conn.execute("PRAGMA page_count").fetchone()[0]
        tx.conn.execute(f"PRAGMA max_page_count = {pages}")

    await db.write(limit_growth)
    caplog.set_level(logging.DEBUG, logger="edgebox.storage")
    big = "b" * 200_000
    results = await one_group(db, insert_user("a"), insert_user(big), insert_user("c"))
    assert all(isinstance(r, StorageUnavailable) for r in results), results
    full = results[1]
    assert full.cause == "disk_full" and full.retry_after == 5
    assert str(full).startswith("the database's disk is full (")
    assert f"bytes free in {tmp_path}); free some space there" in str(full)
    assert await users(db) == ["before"]  # a and c went with their group; none was acked
    assert db.health.describe() == f"failing: {full}"

    again = await one_group(db, insert_user("d" * 200_000))  # the same episode
    assert isinstance(again[0], StorageUnavailable)

    await db.write(lambda tx: tx.conn.execute("PRAGMA max_page_count = 1073741823"))  # space
    assert db.health.describe() == "ok"
    await db.write(insert_user(big))
    assert await users(db) == ["before", big]
    errors = storage_logs(caplog, logging.ERROR)
    assert len(errors) == 1 and "database writes failing cause=disk_full" in errors[0]
    recovered = storage_logs(caplog, logging.WARNING)
    assert len(recovered) == 1 and "database writes succeed again" in recovered[0]
    assert "4 write(s) failed meanwhile" in recovered[0]  # a, b and c, then d


async def test_when_rollback_to_fails_too_every_job_of_its_group_fails(
    flaky: tuple[Database, FlakyConnection],
) -> None:
    db, conn = flaky
    await db.write(insert_user("acked before"))
    conn.fail("INSERT INTO events", DISK_FULL, times=1)  # the statement: disk full ...
    conn.fail("ROLLBACK TO", IO_ERROR, times=1)  # ... and its ROLLBACK TO fails as well
    results = await one_group(
        db, insert_user("a"), insert_user("dup"), insert_user_with_event("b"), insert_user("c")
    )
    assert isinstance(results[0], StorageUnavailable) and results[0].cause == "io_error"
    assert isinstance(results[2], StorageUnavailable) and results[2].cause == "disk_full"
    assert isinstance(results[3], StorageUnavailable)  # never ran: its group was gone
    assert conn.failed == ["INSERT INTO EVENTS (TIME, TYPE, LEVEL, MACHINE, MESSAGE, DATA) "
                           "VALUES (?, ?, ?, ?, ?, ?)", "ROLLBACK TO JOB"]  # fmt: skip
    assert not conn.in_transaction  # the whole transaction was rolled back
    assert await users(db) == ["acked before"]
    assert await db.write(insert_user("next")) > 0  # the writer still serves
    assert await users(db) == ["acked before", "next"]
    assert db.health.describe() == "ok"


async def test_sqlite_rolling_back_on_its_own_fails_the_group_not_the_writer(
    flaky: tuple[Database, FlakyConnection],
) -> None:
    db, conn = flaky
    conn.fail("INSERT INTO events", DISK_FULL, times=1, abort=True)
    results = await one_group(db, insert_user("a"), insert_user_with_event("b"))
    assert [type(r) for r in results] == [StorageUnavailable, StorageUnavailable]
    assert "disk is full" in str(results[0])
    assert await users(db) == []
    assert await db.write(insert_user("next")) > 0
    assert await users(db) == ["next"]


async def test_a_storage_error_that_spares_the_transaction_fails_only_its_job(
    flaky: tuple[Database, FlakyConnection],
) -> None:
    db, conn = flaky
    conn.fail("INSERT INTO events", DISK_FULL, times=1)  # SQLite undid just that statement
    results = await one_group(db, insert_user("a"), insert_user_with_event("b"), insert_user("c"))
    assert isinstance(results[1], StorageUnavailable) and results[1].cause == "disk_full"
    assert results[0] > 0 and results[2] > 0
    assert await users(db) == ["a", "c"]
    assert db.health.describe().startswith("failing: the database's disk is full")
    await db.write(insert_user("d"))
    assert db.health.describe() == "ok"


async def test_a_jobs_own_error_stays_its_own(flaky: tuple[Database, FlakyConnection]) -> None:
    db, conn = flaky
    await db.write(insert_user("dup"))
    conn.fail("INSERT INTO events", DISK_FULL, times=1, abort=True)
    results = await one_group(db, insert_user("dup"), insert_user_with_event("b"))
    assert isinstance(results[0], sqlite3.IntegrityError)  # a conflict, not the disk's fault
    assert isinstance(results[1], StorageUnavailable)


async def test_a_failed_commit_fails_its_group_and_publishes_nothing(
    flaky: tuple[Database, FlakyConnection],
) -> None:
    db, conn = flaky
    published: list[Event] = []
    db.on_commit(published.extend)
    conn.fail("COMMIT", IO_ERROR, times=1)
    results = await one_group(db, insert_user_with_event("a"), insert_user_with_event("b"))
    for result in results:
        assert isinstance(result, StorageUnavailable) and result.cause == "io_error"
        assert "check the disk and the kernel log" in str(result)
    assert published == [] and await users(db) == []
    await db.write(insert_user_with_event("c"))
    assert [e.message for e in published] == ["user c"]
    assert await users(db) == ["c"]


async def test_a_failed_rollback_is_done_before_the_next_group(
    flaky: tuple[Database, FlakyConnection],
) -> None:
    db, conn = flaky
    conn.fail("COMMIT", IO_ERROR, times=1)
    conn.fail("ROLLBACK", IO_ERROR, times=1)  # the group stays open on the connection
    [result] = await one_group(db, insert_user("a"))
    assert isinstance(result, StorageUnavailable)
    assert conn.in_transaction
    assert await db.write(insert_user("b")) > 0
    assert await users(db) == ["b"]  # a was rolled back, not committed with b


async def test_a_locked_database_says_who_to_stop_and_is_retried_sooner(
    flaky: tuple[Database, FlakyConnection], tmp_path: Path
) -> None:
    db, conn = flaky
    conn.fail("BEGIN IMMEDIATE", "database is locked", times=1)
    [result] = await one_group(db, insert_user("a"))
    assert isinstance(result, StorageUnavailable)
    assert result.cause == "locked" and result.retry_after == 1
    assert f"the database {tmp_path / 'edgebox.db'} is locked by another program" in str(result)
    assert await db.write(insert_user("a")) > 0


async def test_a_cause_that_changes_is_logged_again_but_not_each_write(
    flaky: tuple[Database, FlakyConnection], caplog: pytest.LogCaptureFixture
) -> None:
    db, conn = flaky
    caplog.set_level(logging.DEBUG, logger="edgebox.storage")
    conn.fail("BEGIN IMMEDIATE", DISK_FULL, times=5)
    for _ in range(5):
        assert isinstance((await one_group(db, insert_user("a")))[0], StorageUnavailable)
    conn.fail("BEGIN IMMEDIATE", IO_ERROR, times=1)
    assert isinstance((await one_group(db, insert_user("a")))[0], StorageUnavailable)
    await db.write(insert_user("a"))
    errors = storage_logs(caplog, logging.ERROR)
    assert len(errors) == 2
    assert "cause=disk_full" in errors[0] and "now cause=io_error" in errors[1]
    [recovered] = storage_logs(caplog, logging.WARNING)
    assert "6 write(s) failed meanwhile (last cause=io_error)" in recovered
    assert db.health.episodes == 1
