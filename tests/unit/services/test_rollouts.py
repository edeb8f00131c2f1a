"""Bulk deploys over the real services: every machine reserved at once, waves of K started one
after another as the previous wave ends, and a stop after N failures that frees the machines
never started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgebox.domain.deployment import DeployRequest, DeployState, ReleaseRequest
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine, MachineFilter
from edgebox.domain.rollout import RolloutState
from edgebox.services.deploy_views import RolloutView
from edgebox.storage.database import Database
from tests.conftest import FakeClock
from tests.unit.services.deploy_rig import DeployRig, deploy_rig


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[DeployRig]:
    async with deploy_rig(db, clock, tmp_path) as rig:
        yield rig


async def statuses(rig: DeployRig, machines: list[Machine]) -> list[str]:
    return [(await rig.status(m.system_id)).value for m in machines]


async def settle(
    rig: DeployRig, rollout_id: int, expect: list[str], machines: list[Machine]
) -> None:
    """Wait until the rollout driver (its own task) has made its moves."""
    for _ in range(500):
        if await statuses(rig, machines) == expect:
            return
        await asyncio.sleep(0.01)
    assert await statuses(rig, machines) == expect


async def finished(rig: DeployRig, rollout_id: int) -> RolloutView:
    """The rollout once it has ended (the driver ends it in its own task)."""
    for _ in range(500):
        view = await rig.parts.views.rollout(rollout_id)
        if view.rollout.state is not RolloutState.RUNNING:
            return view
        await asyncio.sleep(0.01)
    raise AssertionError(f"rollout {rollout_id} is still running")


async def succeed(rig: DeployRig, machine: Machine) -> None:
    agent = rig.agent(machine)
    assert await agent.boot() == "deploy"
    await agent.deploy()
    await agent.cloud_init(machine.system_id, "user-data")


async def fail(rig: DeployRig, machine: Machine) -> None:
    agent = rig.agent(machine)
    assert await agent.boot() == "deploy"
    await agent.deploy(fail={"step": "download", "error": "connection reset"})


async def test_waves_of_two_deploy_one_wave_after_the_other(rig: DeployRig) -> None:
    machines = [await rig.ready_machine(tags=("hpc",)) for _ in range(5)]
    bulk = await rig.parts.deploys.deploy_many(
        DeployRequest("olga", "tiny"), MachineFilter(tags=("hpc",)), wave=2
    )
    assert bulk.rollout_id is not None
    assert [i.wave for i in bulk.items] == [0, 0, 1, 1, 2]
    assert await statuses(rig, machines) == ["deploying"] * 2 + ["allocated"] * 3
    assert {(await rig.machines.get(m.system_id)).owner for m in machines} == {"olga"}
    await succeed(rig, machines[0])
    assert await statuses(rig, machines) == ["deployed", "deploying"] + ["allocated"] * 3
    await succeed(rig, machines[1])
    await settle(rig, bulk.rollout_id, ["deployed"] * 2 + ["deploying"] * 2 + ["allocated"],
                 machines)  # fmt: skip
    await fail(rig, machines[2])  # one failure, no limit: the rollout goes on
    await succeed(rig, machines[3])
    await settle(rig, bulk.rollout_id,
                 ["deployed", "deployed", "failed_deployment", "deployed", "deploying"],
                 machines)  # fmt: skip
    await succeed(rig, machines[4])
    view = await finished(rig, bulk.rollout_id)
    assert view.rollout.state is RolloutState.DONE
    assert [i.deployment.state for i in view.items].count(DeployState.SUCCEEDED) == 4


async def test_a_rollout_stops_after_n_failures_and_frees_the_rest(rig: DeployRig) -> None:
    machines = [await rig.ready_machine() for _ in range(6)]
    bulk = await rig.parts.deploys.deploy_many(
        DeployRequest("olga", "tiny"), system_ids=[m.system_id for m in machines],
        wave=2, max_failures=2,
    )  # fmt: skip
    assert bulk.rollout_id is not None
    await fail(rig, machines[0])
    await succeed(rig, machines[1])
    await settle(rig, bulk.rollout_id,
                 ["failed_deployment", "deployed", "deploying", "deploying", "allocated",
                  "allocated"], machines)  # fmt: skip
    await fail(rig, machines[2])  # the second failure: wave 2 is never started
    await settle(rig, bulk.rollout_id,
                 ["failed_deployment", "deployed", "failed_deployment", "deploying", "ready",
                  "ready"], machines)  # fmt: skip
    view = await finished(rig, bulk.rollout_id)
    assert view.rollout.state is RolloutState.STOPPED
    assert (
        "2 deployment(s) failed (the limit is 2); 2 machine(s) not started" in view.rollout.reason
    )
    skipped = [i for i in view.items if i.deployment.state is DeployState.SKIPPED]
    assert [i.deployment.system_id for i in skipped] == [m.system_id for m in machines[4:]]
    assert [(await rig.machines.get(m.system_id)).owner for m in machines[4:]] == [None, None]
    assert rig.power.of(machines[4].system_id) == []
    await succeed(rig, machines[3])  # the wave in flight finishes on its own
    assert await rig.status(machines[3].system_id) is Status.DEPLOYED
    assert (await rig.images.resolve("tiny")).holders == ()


async def test_refused_machines_do_not_take_a_place_in_the_waves(rig: DeployRig) -> None:
    busy = await rig.ready_machine(status=Status.COMMISSIONING)
    machines = [await rig.ready_machine() for _ in range(2)]
    bulk = await rig.parts.deploys.deploy_many(
        DeployRequest("olga", "tiny"),
        system_ids=[busy.system_id, "nosuch", *(m.system_id for m in machines)],
        wave=1,
    )
    items = {i.system_id: i for i in bulk.items}
    assert "cannot deploy a machine that is commissioning" in items[busy.system_id].reason
    assert items["nosuch"].reason == "no machine 'nosuch'"
    assert [items[m.system_id].wave for m in machines] == [0, 1]
    assert await statuses(rig, machines) == ["deploying", "allocated"]


async def test_a_machine_released_while_queued_is_skipped(rig: DeployRig) -> None:
    machines = [await rig.ready_machine() for _ in range(2)]
    bulk = await rig.parts.deploys.deploy_many(
        DeployRequest("olga", "tiny"), system_ids=[m.system_id for m in machines], wave=1
    )
    assert bulk.rollout_id is not None
    await rig.parts.releases.release(machines[1].system_id, ReleaseRequest("olga"))
    await succeed(rig, machines[0])
    view = await finished(rig, bulk.rollout_id)
    assert view.rollout.state is RolloutState.DONE
    assert [i.deployment.state for i in view.items] == [DeployState.SUCCEEDED, DeployState.ABORTED]
    assert await statuses(rig, machines) == ["deployed", "ready"]
