"""The side checkpointer copies committed writes into the database file while edgebox runs,
so the writer's own (in-commit) checkpoint is only a backstop it never reaches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import cast

import pytest

from edgebox.storage.checkpointer import BACKSTOP_PAGES, Checkpointer
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx
from tests.unit.storage.flaky import DISK_FULL, FlakyConnection

ROWS = 300


def add_events(tx: Tx) -> None:
    tx.conn.executemany(
        "INSERT INTO events (time, type, level, message) VALUES (0, 't', 'info', ?)",
        [("x" * 500,) for _ in range(ROWS)],
    )


def events_in_main_file(db_path: Path, tmp: Path) -> int:
    """The events the database FILE holds, without its WAL: what a checkpoint has copied."""
    alone = tmp / "alone.db"
    shutil.copyfile(db_path, alone)  # no -wal beside the copy: SQLite sees only the file
    conn = sqlite3.connect(alone)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone() is None:
            return 0  # not even the schema has been copied from the WAL yet
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


async def test_commits_reach_the_database_file_without_the_writer_checkpointing(
    db: Database, tmp_path: Path
) -> None:
    row = await db.fetchone("SELECT 1")  # the reader is up
    assert row is not None
    before = events_in_main_file(db.path, tmp_path)
    await db.write(add_events)  # ~40 pages: far below the backstop, so only in the WAL
    assert events_in_main_file(db.path, tmp_path) == before
    task = asyncio.create_task(
        Checkpointer(db.path, lambda: db.writer.commits, interval=0.01).run()
    )
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if events_in_main_file(db.path, tmp_path) == before + ROWS:
                break
        assert events_in_main_file(db.path, tmp_path) == before + ROWS
        # Writing goes on while it checkpoints, and what is committed stays readable.
        for _ in range(5):
            await db.write(add_events)
        total = await db.fetchone("SELECT count(*) FROM events")
        assert total is not None and total[0] == before + 6 * ROWS
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def test_the_writer_checkpoints_only_as_a_backstop(db: Database) -> None:
    pages = db._write_conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert pages == BACKSTOP_PAGES


def test_a_failing_checkpoint_is_logged_once_until_it_succeeds_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    conn = FlakyConnection(sqlite3.connect(db.path, check_same_thread=False))
    checkpointer = Checkpointer(db.path, lambda: db.writer.commits)
    caplog.set_level(logging.DEBUG, logger="edgebox.storage.checkpointer")
    conn.fail("PRAGMA wal_checkpoint", DISK_FULL, times=3)
    for _ in range(4):  # three failed rounds, then one that works
        checkpointer._checkpoint(cast(sqlite3.Connection, conn))
    conn.real.close()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert levels == [
        (logging.WARNING, f"WAL checkpoint failed error={DISK_FULL}"),
        (logging.INFO, "WAL checkpoints succeed again"),
    ]
