"""The database file, its -wal and its -shm are readable by edgebox's user only (0600), whatever
the umask, and those of an older edgebox are tightened; reads that hit a damaged file say so."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgebox.domain.errors import StorageUnavailable
from edgebox.storage.database import Database
from tests.conftest import FakeClock, running_database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files(db_path: Path) -> list[Path]:
    return [db_path, db_path.with_name("edgebox.db-wal"), db_path.with_name("edgebox.db-shm")]


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what most shells have: files 0644 unless asked otherwise
    try:
        yield
    finally:
        os.umask(previous)


async def _write_something(db: Database, name: str = "u") -> None:
    await db.write(
        lambda tx: tx.conn.execute(
            "INSERT INTO users (username, role, created_at) VALUES (?, 'viewer', 0)", (name,)
        )
    )


@pytest.mark.usefixtures("permissive_umask")
async def test_a_new_database_and_its_wal_and_shm_are_0600(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "edgebox.db"
    async with running_database(path, clock) as db:
        await _write_something(db)
        assert [mode(p) for p in files(path)] == [0o600, 0o600, 0o600]


@pytest.mark.usefixtures("permissive_umask")
async def test_the_files_of_an_older_edgebox_are_tightened(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "edgebox.db"
    async with running_database(path, clock):
        pass
    path.chmod(0o644)  # as an edgebox before this one left it
    async with running_database(path, clock) as db:
        await _write_something(db)
        assert [mode(p) for p in files(path)] == [0o600, 0o600, 0o600]


async def test_a_read_of_a_damaged_file_is_a_storage_error(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "edgebox.db"
    async with running_database(path, clock) as db:
        for i in range(200):
            await _write_something(db, f"user-{i:04d}-" + "x" * 100)
        row = await db.fetchone("SELECT rootpage FROM sqlite_master WHERE name = 'users'")
        size = await db.fetchone("PRAGMA page_size")
        assert row is not None and size is not None
        root, page_size = row[0], size[0]
    with path.open("r+b") as damaged:  # the users table's root page: garbage
        damaged.seek((root - 1) * page_size)
        damaged.write(b"\xff" * page_size)
    async with running_database(path, clock) as db:
        with pytest.raises(StorageUnavailable, match=r"is damaged .*restore the file"):
            await db.fetchall("SELECT * FROM users")
