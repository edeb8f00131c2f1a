"""A write connection whose statements fail on cue, as SQLite's fail on a full or failing disk.

`FlakyConnection` wraps a real connection: every statement runs on it unless a rule says the
statement fails. A rule can also do what SQLite itself may do after SQLITE_FULL or SQLITE_IOERR
inside a statement: roll back the whole transaction, savepoints and all, before the error
reaches the caller (https://sqlite.org/lang_transaction.html, "Response To Errors Within A
Transaction"). `flaky_database` is a `Database` whose writer writes through one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiosqlite

from edgebox.storage.database import Database
from edgebox.storage.writer import GroupCommitWriter
from tests.conftest import FakeClock, running_database

DISK_FULL = "database or disk is full"
IO_ERROR = "disk I/O error"


@dataclass
class _Rule:
    prefix: str  # the statement's start, upper case: "INSERT INTO USERS", "ROLLBACK TO"
    error: str
    times: int
    abort_transaction: bool


class FlakyConnection:
    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self._rules: list[_Rule] = []
        self.failed: list[str] = []  # the statements that were made to fail

    def fail(
        self, prefix: str, error: str = DISK_FULL, times: int = 1_000, abort: bool = False
    ) -> None:
        """The next `times` statements that start with `prefix` raise OperationalError(error);
        with `abort`, SQLite's whole transaction is rolled back first."""
        self._rules.append(_Rule(prefix.upper(), error, times, abort))

    def heal(self) -> None:
        self._rules.clear()

    @property
    def in_transaction(self) -> bool:
        return self.real.in_transaction

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._maybe_fail(sql)
        return self.real.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        self._maybe_fail(sql)
        return self.real.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _maybe_fail(self, sql: str) -> None:
        text = " ".join(sql.split()).upper()
        for rule in self._rules:
            if rule.times > 0 and text.startswith(rule.prefix):
                rule.times -= 1
                if rule.abort_transaction and self.real.in_transaction:
                    self.real.execute("ROLLBACK")
                self.failed.append(text)
                raise sqlite3.OperationalError(rule.error)


@contextlib.asynccontextmanager
async def flaky_database(
    path: Path, clock: FakeClock
) -> AsyncIterator[tuple[Database, FlakyConnection]]:
    """A migrated database whose writer (running) writes through a `FlakyConnection`."""
    async with running_database(path, clock):
        pass  # made and migrated
    real = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    real.row_factory = sqlite3.Row
    real.execute("PRAGMA foreign_keys = ON")
    flaky = FlakyConnection(real)
    writer = GroupCommitWriter(cast(sqlite3.Connection, flaky), clock.now, path=path)
    reader = await aiosqlite.connect(path)
    reader.row_factory = sqlite3.Row
    lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    db = Database(path, writer, real, reader, lock_fd)
    task = asyncio.create_task(writer.run())
    try:
        yield db, flaky
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await db.close()
