"""Releases over a real temporary database and the real machine-facing app: each erase mode,
a power-off through the (fake) power queue, a machine without a BMC, an erase that fails, and
an Allocated machine that is just freed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgebox.domain.deployment import (
    DeployKind,
    DeployRequest,
    DeployState,
    EraseMode,
    ReleaseRequest,
)
from edgebox.domain.lifecycle import IllegalTransition, Status
from edgebox.domain.models import Machine, MachineFilter
from edgebox.domain.power import PowerOp, PowerOpState
from edgebox.storage.database import Database
from tests.conftest import FakeClock
from tests.unit.services.deploy_rig import DeployRig, deploy_rig


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[DeployRig]:
    async with deploy_rig(db, clock, tmp_path) as rig:
        yield rig


async def deployed(rig: DeployRig, **options: object) -> Machine:
    machine = await rig.ready_machine(**options)  # type: ignore[arg-type]
    await rig.parts.deploys.deploy(machine.system_id, DeployRequest("olga", "tiny"))
    agent = rig.agent(machine)
    await agent.boot()
    await agent.deploy()
    await agent.cloud_init(machine.system_id, "user-data")
    assert await rig.status(machine.system_id) is Status.DEPLOYED
    rig.power.requests.clear()
    return machine


@pytest.mark.parametrize("mode", [EraseMode.QUICK, EraseMode.FULL, EraseMode.SECURE])
async def test_release_with_an_erase_boots_the_agent_to_erase(
    rig: DeployRig, mode: EraseMode
) -> None:
    machine = await deployed(rig)
    sid = machine.system_id
    after = await rig.parts.releases.release(sid, ReleaseRequest("olga", mode, "project over"))
    assert (after.status, after.owner) == (Status.DISK_ERASING, "olga")
    assert rig.power.of(sid) == [PowerOp.ON_NETWORK]
    agent = rig.agent(machine)
    assert await agent.boot() == "erase"
    assert await agent.plan("erase") == {"mode": mode.value, "disks": ""}
    status, answer = await agent.post(
        "/machine/v1/erase/progress", json={"disk": "vda", "done": 1 << 20, "total": 8 << 20}
    )
    assert (status, answer) == (200, {"ok": True})
    view = await rig.parts.views.deployment(sid)
    assert (view.deployment.kind, view.deployment.agent_step, view.deployment.done) == (
        DeployKind.RELEASE, "vda", 1 << 20,
    )  # fmt: skip
    how = "secure-fallback-full" if mode is EraseMode.SECURE else mode.value
    status, answer = await agent.post(
        "/machine/v1/erase/done", json={"ok": True, "disks": {"vda": how}}
    )
    assert (status, answer) == (200, {"action": "poweroff"})
    after = await rig.machines.get(sid)
    assert (after.status, after.owner) == (Status.READY, None)
    view = await rig.parts.views.deployment(sid)
    assert view.deployment.state is DeployState.SUCCEEDED
    assert view.deployment.result == {"disks": {"vda": how}}
    messages = await rig.messages(sid)
    assert any("deployed -> releasing (release by olga: project over)" in m for m in messages)
    assert any(f"releasing -> disk_erasing (erase-started: erase {mode.value})" in m
               for m in messages)  # fmt: skip
    assert any(f"disk_erasing -> ready (erase-succeeded: disks erased: vda ({how}))" in m
               for m in messages)  # fmt: skip
    # The machine is Ready: its seed is gone.
    assert (await agent.cloud_init(sid, "meta-data"))[0] == 404


async def test_a_failed_erase_is_failed_disk_erasing_with_the_disk(rig: DeployRig) -> None:
    machine = await deployed(rig)
    await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga", EraseMode.QUICK))
    agent = rig.agent(machine)
    await agent.boot()
    await agent.post("/machine/v1/erase/log", data=b"wipefs: vdb: I/O error\n")
    status, answer = await agent.post(
        "/machine/v1/erase/done", json={"ok": False, "disk": "vdb", "error": "I/O error"}
    )
    assert (status, answer) == (200, {"action": "poweroff"})
    after = await rig.machines.get(machine.system_id)
    assert (after.status, after.owner) == (Status.FAILED_DISK_ERASING, "olga")
    view = await rig.parts.views.deployment(machine.system_id)
    assert (view.deployment.failed_step, view.deployment.error) == ("vdb", "I/O error")
    assert view.log == b"wipefs: vdb: I/O error\n"
    # Released again, it goes through (Failed disk erasing -> Releasing).
    again = await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga"))
    assert again.status is Status.RELEASING


async def test_a_forged_empty_erase_report_never_makes_a_machine_ready(rig: DeployRig) -> None:
    """The attack: after a *secure* erase request, `erase/done` with `"disks": {}` moved the
    machine from Disk erasing to Ready; the next tenant got the previous tenant's disks."""
    machine = await deployed(rig)
    await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga", EraseMode.SECURE))
    agent = rig.agent(machine)
    await agent.boot()
    status, answer = await agent.post("/machine/v1/erase/done", json={"ok": True, "disks": {}})
    assert (status, answer) == (200, {"action": "poweroff"})
    after = await rig.machines.get(machine.system_id)
    assert (after.status, after.owner) == (Status.FAILED_DISK_ERASING, "olga")
    view = await rig.parts.views.deployment(machine.system_id)
    assert view.deployment.error == "the agent reported no disk erased"


async def test_release_without_erase_powers_off_then_ready(rig: DeployRig) -> None:
    machine = await deployed(rig)
    after = await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga"))
    assert after.status is Status.RELEASING
    assert rig.power.of(machine.system_id) == [PowerOp.OFF]
    await rig.wait_for(machine.system_id, Status.READY)
    assert (await rig.machines.get(machine.system_id)).owner is None
    view = await rig.parts.views.deployment(machine.system_id)
    assert (view.deployment.state, view.deployment.erase) == (DeployState.SUCCEEDED, EraseMode.NONE)


async def test_a_failed_power_off_is_failed_releasing(rig: DeployRig) -> None:
    machine = await deployed(rig)
    rig.power.outcome, rig.power.error = PowerOpState.FAILED, "BMC 10.0.0.9: timeout"
    await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga"))
    await rig.wait_for(machine.system_id, Status.FAILED_RELEASING)
    view = await rig.parts.views.deployment(machine.system_id)
    assert view.deployment.error == "power off failed: BMC 10.0.0.9: timeout"


async def test_a_machine_without_a_bmc_is_ready_at_once(rig: DeployRig) -> None:
    machine = await deployed(rig, bmc=None)
    after = await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga"))
    assert (after.status, after.owner) == (Status.READY, None)
    assert rig.power.requests == []
    assert any("no BMC: power it off by hand" in m for m in await rig.messages(machine.system_id))


async def test_releasing_an_allocated_machine_just_frees_it(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    await rig.parts.allocation.allocate_one(machine.system_id, "olga")
    after = await rig.parts.releases.release(
        machine.system_id, ReleaseRequest("olga", EraseMode.FULL)
    )
    assert (after.status, after.owner) == (Status.READY, None)
    assert rig.power.requests == []


async def test_a_release_that_the_lifecycle_forbids_is_refused(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    with pytest.raises(IllegalTransition, match="cannot release a machine that is ready"):
        await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga"))
    await rig.parts.deploys.deploy(machine.system_id, DeployRequest("olga", "tiny"))
    with pytest.raises(IllegalTransition, match="cannot release a machine that is deploying"):
        await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga"))


async def test_abort_an_erase(rig: DeployRig) -> None:
    machine = await deployed(rig)
    await rig.parts.releases.release(machine.system_id, ReleaseRequest("olga", EraseMode.FULL))
    after = await rig.parts.releases.abort(machine.system_id, "olga")
    assert after.status is Status.FAILED_DISK_ERASING
    assert rig.power.of(machine.system_id) == [PowerOp.ON_NETWORK, PowerOp.OFF]


async def test_release_many_follows_as_one_rollout(rig: DeployRig) -> None:
    machines = [await deployed(rig, tags=("batch",)) for _ in range(3)]
    free = await rig.ready_machine(tags=("batch",))
    bulk = await rig.parts.releases.release_many(
        ReleaseRequest("olga", EraseMode.QUICK), MachineFilter(tags=("batch",))
    )
    assert bulk.rollout_id is not None
    accepted = {i.system_id: i.accepted for i in bulk.items}
    assert accepted == {**{m.system_id: True for m in machines}, free.system_id: False}
    refused = next(i for i in bulk.items if not i.accepted)
    assert "cannot release a machine that is ready" in refused.reason
    for machine in machines:
        agent = rig.agent(machine)
        await agent.boot()
        await agent.post("/machine/v1/erase/done", json={"ok": True, "disks": {"vda": "quick"}})
    view = await rig.parts.views.rollout(bulk.rollout_id)
    assert [i.deployment.state for i in view.items] == [DeployState.SUCCEEDED] * 3
    for _ in range(500):  # the rollout driver notices the last ending in its own task
        if (await rig.parts.views.rollout(bulk.rollout_id)).rollout.state.value == "done":
            break
        await asyncio.sleep(0.01)
    assert (await rig.parts.views.rollout(bulk.rollout_id)).rollout.state.value == "done"


async def test_the_watchdog_fails_a_silent_erase_and_a_power_off_never_done(
    rig: DeployRig,
) -> None:
    erasing, waiting = await deployed(rig), await deployed(rig)
    await rig.parts.releases.release(erasing.system_id, ReleaseRequest("olga", EraseMode.FULL))
    rig.power.outcome = PowerOpState.WAITING  # a person was asked and never confirmed
    await rig.parts.releases.release(waiting.system_id, ReleaseRequest("olga"))
    agent = rig.agent(erasing)
    await agent.boot()
    await agent.post("/machine/v1/erase/progress", json={"disk": "vda", "done": 5, "total": 9})
    rig.clock.advance(1799)
    assert await rig.parts.deploys.check() == 0
    rig.clock.advance(1)
    assert await rig.parts.deploys.check() == 2
    assert await rig.status(erasing.system_id) is Status.FAILED_DISK_ERASING
    assert await rig.status(waiting.system_id) is Status.FAILED_RELEASING
    erase = (await rig.parts.views.deployment(erasing.system_id)).deployment
    assert "silent for 30 min during the erase; its last report: vda 5 of 9 bytes" in erase.error
    off = (await rig.parts.views.deployment(waiting.system_id)).deployment
    assert "was not powered off in the 30 min" in off.error
