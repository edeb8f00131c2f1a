"""Opening the SQLite database: pragmas, the single-instance lock, migrations, the two sides.

One file in WAL mode. All writes go through `GroupCommitWriter` on one connection; reads go
through one aiosqlite connection, which in WAL mode sees every committed write and never
blocks the writer. A lock file beside the database keeps a second edgebox off it: two writers
would break the group commit's guarantees and the event sequence.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from edgebox.domain.models import Event
from edgebox.storage.checkpointer import BACKSTOP_PAGES
from edgebox.storage.failures import StorageHealth, storage_failure
from edgebox.storage.migrations import load_migrations, migrate
from edgebox.storage.writer import GroupCommitWriter, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseInUse(Exception):
    """Another edgebox process has this database open."""


class Database:
    def __init__(
        self,
        path: Path,
        writer: GroupCommitWriter,
        write_conn: sqlite3.Connection,
        reader: aiosqlite.Connection,
        lock_fd: int,
    ) -> None:
        self.path = path
        self.writer = writer
        self._write_conn = write_conn
        self._reader = reader
        self._lock_fd = lock_fd

    @classmethod
    async def open(
        cls,
        path: Path,
        clock: Callable[[], float],
        synchronous: str = "full",
        linger: float = 0.0,
    ) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = _take_lock(path)
        try:
            write_conn = await asyncio.to_thread(_open_writer, path, synchronous)
            reader = await aiosqlite.connect(path)
            reader.row_factory = sqlite3.Row
            await reader.execute("PRAGMA foreign_keys = ON")
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            os.close(lock_fd)
            raise
        writer = GroupCommitWriter(write_conn, clock, linger=linger, path=path)
        return cls(path, writer, write_conn, reader, lock_fd)

    @property
    def health(self) -> StorageHealth:
        """Whether writes succeed now (`/health` shows it)."""
        return self.writer.health

    def on_commit(self, listener: Callable[[list[Event]], None]) -> None:
        self.writer.set_commit_listener(listener)

    async def write(self, fn: Callable[[Tx], T]) -> T:
        return await self.writer.write(fn)

    def submit(self, fn: Callable[[Tx], T]) -> asyncio.Future[T]:
        return self.writer.submit(fn)

    # Each read is ONE hop to the reader's thread (execute and fetch together). With execute
    # and fetch as two hops, other reads run in between while the first statement is still
    # open, and an open statement holds the connection's WAL snapshot: under load the reader
    # then keeps reading from before the latest commits (a boot token just issued is
    # "unknown", results just written are missing).
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._read(sql, params))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return next(iter(await self._read(sql, params)), None)

    async def _read(self, sql: str, params: Iterable[Any]) -> Iterable[sqlite3.Row]:
        try:
            return await self._reader.execute_fetchall(sql, tuple(params))
        except sqlite3.Error as exc:  # an I/O error, a damaged file: not the caller's fault
            failure = storage_failure(exc, self.path)
            if failure is None:
                raise
            raise failure from exc

    async def close(self) -> None:
        """Close both sides. The writer task must have been stopped first."""
        await self._reader.close()
        self.writer.close()
        await asyncio.to_thread(self._close_writer)
        os.close(self._lock_fd)
        log.info("database closed path=%s", self.path)

    def _close_writer(self) -> None:
        # A clean close checkpoints the WAL into the main file.
        self._write_conn.close()


def _take_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatabaseInUse(
            f"the database {path} is in use by another edgebox process (lock {lock_path}); "
            "stop that process or give this one another data_dir"
        ) from None
    return fd


def _open_writer(path: Path, synchronous: str) -> sqlite3.Connection:
    _private_files(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: the WAL is fsynced at every commit, so an acknowledged write survives power loss.
    conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    # Checkpoints run beside the writer (checkpointer.py); this is only the backstop.
    conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES:d}")
    migrate(conn, str(path), load_migrations())
    return conn


def _private_files(path: Path) -> None:
    """The database, its -wal and its -shm hold the whole inventory and every token's hash:
    only edgebox's own user may read them. SQLite creates the -wal and -shm files with the
    mode of the database file (os_unix.c, findCreateFileMode), so a database made 0600 keeps
    them 0600 whatever the umask; the files of an older edgebox are tightened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
        os.close(fd)
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            loose = name.stat().st_mode & 0o077
        except FileNotFoundError:
            continue
        if loose:
            os.chmod(name, 0o600)
            log.warning("tightened the mode of %s to 0600 (it was readable by others)", name)
