"""Shared fixtures: a real temporary database with its writer running, and a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgebox.storage.database import Database


class FakeClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.wall = start
        self.mono = 1000.0

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@contextlib.asynccontextmanager
async def running_database(path: Path, clock: FakeClock) -> AsyncIterator[Database]:
    db = await Database.open(path, clock.now)
    task = asyncio.create_task(db.writer.run())
    try:
        yield db
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await db.close()


@pytest.fixture
async def db(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Database]:
    async with running_database(tmp_path / "edgebox.db", clock) as database:
        yield database
