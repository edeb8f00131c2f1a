"""Background loops outlive a database that cannot take writes: a power operation whose outcome
cannot be stored runs again once it can, a poll that cannot record a change tries at the next
round, and an image import whose end cannot be stored is taken up again. None of them ends
its loop (which would end the whole process with it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgebox.domain.errors import StorageUnavailable
from edgebox.domain.power import PowerOp, PowerOpState, PowerState
from edgebox.services.image_signing import write_key_pair
from edgebox.services.image_sources import LocalSource
from edgebox.services.machine_service import MachineService
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.image_store import ImageState
from edgebox.storage.machine_store import MachineStore
from tests.conftest import FakeClock
from tests.unit.services.image_fixtures import build_image, make_service, settled
from tests.unit.services.image_fixtures import running as images_running
from tests.unit.services.test_power_service import FakeBmc, Lab, Rig, make_power
from tests.unit.services.test_power_service import running as power_running


def failing_first(
    real: Callable[..., Awaitable[Any]], times: int
) -> tuple[Callable[..., Awaitable[Any]], list[int]]:
    """`real`, except that its first `times` calls fail as on a full disk (retry at once)."""
    calls = [0]

    async def call(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise StorageUnavailable("the database's disk is full", "disk_full", retry_after=0)
        return await real(*args, **kwargs)

    return call, calls


@pytest.fixture
def rig(db: Database, clock: FakeClock, tmp_path: Path) -> Rig:
    lab = Lab()
    power = make_power(db, clock, lab, tmp_path)
    return Rig(power, MachineService(MachineStore(db)), db, lab, EventStore(db))


async def test_a_power_outcome_that_cannot_be_stored_runs_again_once_it_can(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system_id = await rig.machine("52:54:00:00:09:01")
    store = rig.power._store
    finish, calls = failing_first(store.finish, 1)
    monkeypatch.setattr(store, "finish", finish)
    async with power_running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON, "test")
        await rig.wait(op.id, {PowerOpState.DONE, PowerOpState.FAILED})
    done = (await rig.power.ops([op.id]))[0]
    assert done.state == PowerOpState.DONE and calls[0] == 2
    assert rig.lab.bmcs["52:54:00:00:09:01"].calls == ["on", "on"]  # safe to repeat
    assert (await rig.machines.get(system_id)).power_state == PowerState.ON


async def test_a_power_operation_that_cannot_start_waits_for_the_database(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system_id = await rig.machine("52:54:00:00:09:02")
    store = rig.power._store
    start, calls = failing_first(store.start, 3)
    monkeypatch.setattr(store, "start", start)
    async with power_running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON, "test")
        await rig.wait(op.id, {PowerOpState.DONE, PowerOpState.FAILED})
    assert (await rig.power.ops([op.id]))[0].state == PowerOpState.DONE and calls[0] == 4
    assert rig.lab.bmcs["52:54:00:00:09:02"].calls == ["on"]


async def test_a_poll_that_cannot_record_tries_again_at_the_next_round(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system_id = await rig.machine("52:54:00:00:09:03")
    rig.lab.bmcs["52:54:00:00:09:03"] = FakeBmc(state=PowerState.ON)
    store = rig.power._store
    record, calls = failing_first(store.set_power_state, 1)
    monkeypatch.setattr(store, "set_power_state", record)
    await rig.power.poll_once()  # does not raise
    assert (await rig.machines.get(system_id)).power_state != PowerState.ON
    await rig.power.poll_once()
    assert (await rig.machines.get(system_id)).power_state == PowerState.ON and calls[0] == 2


async def test_an_import_whose_end_cannot_be_stored_is_taken_up_again(
    db: Database, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = write_key_pair(tmp_path / "builder")
    service = make_service(db, clock, tmp_path / "cache", key)
    built = build_image(tmp_path / "build", key)
    finish, calls = failing_first(service._store.finish, 1)
    monkeypatch.setattr(service._store, "finish", finish)
    image, _ = await service.import_image(LocalSource(built.directory), "admin")
    async with images_running(service) as running_service:
        done = await settled(running_service, image.id)
        await asyncio.sleep(0)
    assert done.state == ImageState.READY, done.error
    assert calls[0] == 2
