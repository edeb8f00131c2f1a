"""The group-commit writer: results, isolation of failing jobs, fewer fsyncs than writes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edgebox.domain.models import Event, NewEvent
from edgebox.storage.database import Database, DatabaseInUse
from edgebox.storage.event_store import EventStore
from edgebox.storage.migrations import SchemaTooNew
from edgebox.storage.writer import Tx
from tests.conftest import FakeClock, running_database


def _insert_user(name: str):  # type: ignore[no-untyped-def]
    def job(tx: Tx) -> int:
        cur = tx.conn.execute(
            "INSERT INTO users (username, role, created_at) VALUES (?, 'viewer', ?)",
            (name, tx.now),
        )
        tx.emit(NewEvent("user.created", f"user {name}"))
        return int(cur.lastrowid or 0)

    return job


async def test_a_burst_of_writes_commits_in_far_fewer_groups(db: Database) -> None:
    ids = await asyncio.gather(*(db.write(_insert_user(f"u{i}")) for i in range(500)))
    assert sorted(ids) == list(range(1, 501))
    assert db.writer.jobs_done == 500
    assert db.writer.commits < 50, db.writer.commits
    row = await db.fetchone("SELECT count(*) FROM users")
    assert row is not None and row[0] == 500


async def test_a_failing_job_is_rolled_back_alone(db: Database) -> None:
    def broken(tx: Tx) -> None:
        tx.conn.execute("INSERT INTO users (username, role, created_at) VALUES ('x', 'viewer', 0)")
        tx.emit(NewEvent("user.created", "x"))
        raise ValueError("nope")

    results = await asyncio.gather(
        db.write(_insert_user("a")),
        db.write(broken),
        db.write(_insert_user("b")),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    names = [r[0] for r in await db.fetchall("SELECT username FROM users ORDER BY username")]
    assert names == ["a", "b"]
    events = await EventStore(db).after(0, 100)
    assert [e.message for e in events] == ["user a", "user b"]


async def test_events_are_published_after_commit_in_sequence(db: Database) -> None:
    published: list[Event] = []

    def listener(events: list[Event]) -> None:
        # Published only once committed: the reader already sees every one of them.
        published.extend(events)

    db.on_commit(listener)
    await asyncio.gather(*(db.write(_insert_user(f"u{i}")) for i in range(50)))
    seqs = [e.seq for e in published]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50
    stored = await EventStore(db).after(0, 100)
    assert [e.seq for e in stored] == seqs


async def test_an_integrity_error_reaches_the_caller(db: Database) -> None:
    await db.write(_insert_user("dup"))
    with pytest.raises(sqlite3.IntegrityError):
        await db.write(_insert_user("dup"))
    # The writer is still alive.
    assert await db.write(_insert_user("after")) > 0


async def test_event_seq_is_never_reused(db: Database) -> None:
    store = EventStore(db)
    first = await store.append(NewEvent("t", "one"))

    def drop_all(tx: Tx) -> None:
        tx.conn.execute("DELETE FROM events")

    await db.write(drop_all)
    second = await store.append(NewEvent("t", "two"))
    assert second.seq > first.seq


async def test_second_process_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    async with running_database(tmp_path / "e.db", clock):
        with pytest.raises(DatabaseInUse, match="in use by another edgebox"):
            await Database.open(tmp_path / "e.db", clock.now)


async def test_a_newer_schema_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "e.db"
    async with running_database(path, clock):
        pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(SchemaTooNew, match=r"schema version 99.*newer edgebox"):
        await Database.open(path, clock.now)


async def test_pragmas(db: Database, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "edgebox.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    row = await db.fetchone("PRAGMA foreign_keys")
    assert row is not None and row[0] == 1
