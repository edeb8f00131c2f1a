"""Commissioning and testing end to end in the services, over a real temporary database: an
agent (simulated by calling the service as the machine API does) runs the plan, and the
machine lands where the lifecycle says, with results, output, inventory and events stored."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgebox.domain.commissioning_settings import CommissioningSettings
from edgebox.domain.errors import Conflict, InvalidInput, NotFound
from edgebox.domain.hardware import summary_of
from edgebox.domain.lifecycle import IllegalTransition, Status
from edgebox.domain.models import MachineFilter
from edgebox.domain.power import PowerOp
from edgebox.domain.script_results import IllegalResultEvent, ResultStatus
from edgebox.domain.script_runs import RunKind, RunState
from edgebox.domain.settings import PowerSettings
from edgebox.services.boot_service import AgentAuthError
from edgebox.services.commissioning_service import RunRequest
from edgebox.services.commissioning_watchdog import CommissioningWatchdog
from edgebox.services.power_service import PowerService
from edgebox.services.secret_box import SecretBox
from edgebox.storage.database import Database
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import PowerStore
from tests.conftest import FakeClock
from tests.unit.services.commissioning_rig import FakeAgent, Rig, make_rig


@pytest.fixture
async def rig(db: Database, clock: FakeClock) -> AsyncIterator[Rig]:
    yield await make_rig(db, clock)


async def statuses(rig: Rig, system_id: str) -> dict[str, str]:
    view = await rig.service.results(system_id)
    assert view is not None
    return {f"{r.name}:{r.device}" if r.device else r.name: r.status.value for r in view.results}


async def test_a_full_commissioning_reaches_ready(rig: Rig) -> None:
    machine = await rig.enlist()
    after = await rig.service.start(
        machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ("disk-check", "gpu-presence"))
    )
    assert after.status is Status.COMMISSIONING and after.previous_status is Status.NEW
    agent = FakeAgent(rig.agent, machine)
    plan = await agent.plan()
    # Commissioning scripts first (the inventory first of all), then one disk-check per disk.
    assert [(p.name, p.parallel, p.timeout) for p in plan] == [
        ("edgebox-inventory", "any", 120),
        ("firmware-info", "disabled", 60),
        ("disk-check", "instance", 600),
        ("disk-check", "instance", 600),
        ("gpu-presence", "any", 120),
    ]
    env = await rig.agent.env(agent.call, plan[2].id)
    assert "export EDGEBOX_DEVICE='/dev/vda'\n" in env
    assert "export EDGEBOX_PARAM_PASSES='2'\n" in env
    assert f"export EDGEBOX_RESULT_ID='{plan[2].id}'\n" in env
    script = await rig.agent.script(agent.call, plan[2].id)
    assert script.startswith(b"#!/bin/sh\n# --- edgebox script ---\n# name: disk-check\n")

    await agent.run_plan()

    done = await rig.machines.get(machine.system_id)
    assert done.status is Status.READY
    assert await statuses(rig, machine.system_id) == {
        "edgebox-inventory": "passed",
        "firmware-info": "passed",
        "disk-check:vda": "passed",
        "disk-check:vdb": "passed",
        "gpu-presence": "passed",
    }
    inventory = await rig.machines.inventory(machine.system_id)
    assert inventory is not None
    assert [d["name"] for d in inventory["disks"]] == ["vda", "vdb"]  # type: ignore[index]
    assert inventory["gpus"][0]["vendor"] == "nvidia"  # type: ignore[index]
    assert rig.tags.retagged == [machine.system_id]
    messages = await rig.event_messages(machine.system_id)
    assert any("new -> commissioning (commission by olga: 4 script(s))" in m for m in messages)
    assert any("commissioning -> ready: all 5 script result(s) passed" in m for m in messages)
    assert await rig.agent.heartbeat(agent.call, agent.boot) == {"action": "poweroff"}


async def test_a_failing_script_fails_commissioning_and_keeps_its_output(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    agent = FakeAgent(rig.agent, machine)
    await agent.run_plan(
        {"firmware-info": {"exit_code": 3, "stdout": b"reading\n", "stderr": b"no DMI table\n"}}
    )
    machine = await rig.machines.get(machine.system_id)
    assert machine.status is Status.FAILED_COMMISSIONING
    view = await rig.service.results(machine.system_id)
    assert view is not None and view.run.state is RunState.FAILED
    failed = next(r for r in view.results if r.name == "firmware-info")
    assert (failed.status, failed.exit_code, failed.runtime) == (ResultStatus.FAILED, 3, 1.5)
    detail = await rig.service.result(machine.system_id, failed.id)
    assert detail.output["stdout"] == (b"reading\n", 8)
    assert detail.output["stderr"] == (b"no DMI table\n", 13)
    messages = await rig.event_messages(machine.system_id)
    assert any(
        "commissioning -> failed_commissioning: failed: firmware-info (failed)" in m
        for m in messages
    )


async def test_a_timed_out_script_fails_testing(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    [line] = await agent.plan()
    await agent.run(line.id, exit_code=137, timed_out=True)
    machine = await rig.machines.get(machine.system_id)
    assert machine.status is Status.FAILED_TESTING
    assert await statuses(rig, machine.system_id) == {"cpu-burn": "timedout"}


async def test_a_passing_test_returns_the_machine_where_it_was(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "deployed")
    with pytest.raises(InvalidInput, match="wipe-disks is destructive and the machine is deployed"):
        await rig.service.start(
            machine.system_id, RunKind.TESTING, RunRequest("olga", ("wipe-disks",))
        )
    # The default tests: every built-in test that is not destructive.
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga"))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    names = [p.name for p in await agent.plan()]
    assert names == ["cpu-burn", "disk-check", "disk-check", "gpu-presence"]
    await agent.run_plan({"gpu-presence": {"result_file": b"results: {gpus_seen: 0}\n"}})
    machine = await rig.machines.get(machine.system_id)
    assert machine.status is Status.DEPLOYED and machine.previous_status is None


async def test_abort_returns_the_machine_and_refuses_the_agent(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    agent = FakeAgent(rig.agent, machine)
    first, second, *_ = await agent.plan()
    await rig.agent.start(agent.call, agent.boot, first.id)
    after = await rig.service.abort(machine.system_id, RunRequest("vic", comment="wrong rack"))
    assert after.status is Status.NEW
    assert set((await statuses(rig, machine.system_id)).values()) == {"aborted"}
    with pytest.raises(IllegalResultEvent, match="cannot start a result that is aborted"):
        await rig.agent.start(agent.call, agent.boot, second.id)
    assert await rig.agent.heartbeat(agent.call, agent.boot) == {"action": "poweroff"}
    assert rig.watchdog.active(machine.id) is None
    messages = await rig.event_messages(machine.system_id)
    assert any("commissioning -> new (abort by vic): wrong rack" in m for m in messages)
    with pytest.raises(IllegalTransition, match="cannot abort a machine that is new"):
        await rig.service.abort(machine.system_id, RunRequest("vic"))


async def test_a_malformed_result_file_fails_the_result_with_the_reason(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    [line] = await agent.plan()
    await agent.run(line.id, result_file=b"status: [passed\n")
    view = await rig.service.results(machine.system_id)
    assert view is not None
    [result] = view.results
    assert result.status is ResultStatus.FAILED
    assert result.note.startswith("the result file is not valid: not valid YAML at line")
    assert (await rig.machines.get(machine.system_id)).status is Status.FAILED_TESTING


async def test_the_result_file_overrides_the_exit_code(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    [line] = await agent.plan()
    await agent.run(line.id, result_file=b"status: degraded\nresults: {mhz: 2400, ok: yes}\n")
    [result] = (await rig.service.results(machine.system_id)).results  # type: ignore[union-attr]
    assert result.status is ResultStatus.DEGRADED
    assert result.results == {"mhz": 2400, "ok": True}
    # Degraded is no failure: the machine goes back to Ready.
    assert (await rig.machines.get(machine.system_id)).status is Status.READY


@pytest.mark.parametrize(
    ("seen", "expected", "machine_status"),
    [(1, "passed", Status.READY), (0, "failed", Status.FAILED_TESTING),
     (2, "degraded", Status.READY)],
)  # fmt: skip
async def test_gpu_presence_is_compared_with_the_inventory(
    rig: Rig, seen: int, expected: str, machine_status: Status
) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ()))
    await FakeAgent(rig.agent, machine).run_plan()  # the inventory: one GPU
    await rig.service.start(
        machine.system_id, RunKind.TESTING, RunRequest("olga", ("gpu-presence",))
    )
    agent = FakeAgent(rig.agent, machine, purpose="test", boot="boot-2")
    [line] = await agent.plan()
    await agent.run(line.id, result_file=f"results: {{gpus_seen: {seen}}}\n".encode())
    [result] = (await rig.service.results(machine.system_id)).results  # type: ignore[union-attr]
    assert result.status.value == expected
    if seen != 1:
        assert "the inventory lists 1" in result.note or "more than the 1" in result.note
    assert (await rig.machines.get(machine.system_id)).status is machine_status


async def test_an_unparseable_bundle_fails_the_inventory_script(rig: Rig) -> None:
    def broken(text: str) -> dict[str, object]:
        raise ValueError("section 3 is garbage")

    rig.agent._parse_inventory = broken
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ()))
    await FakeAgent(rig.agent, machine).run_plan()
    view = await rig.service.results(machine.system_id)
    assert view is not None
    inventory = next(r for r in view.results if r.name == "edgebox-inventory")
    assert inventory.status is ResultStatus.FAILED
    assert "could not be parsed: section 3 is garbage" in inventory.note
    assert (await rig.machines.get(machine.system_id)).status is Status.FAILED_COMMISSIONING
    assert rig.tags.retagged == []


async def test_a_commissioned_inventory_survives_the_next_enlistment(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ()))
    await FakeAgent(rig.agent, machine).run_plan()
    await rig.enlist()  # the next boot enlists again with its crude inventory
    inventory = await rig.machines.inventory(machine.system_id)
    assert inventory is not None and "gpus" in inventory and "dmi" not in inventory
    # And the list's hardware columns keep the commissioned figures too.
    after = await rig.machines.get(machine.system_id)
    assert after.hardware == summary_of(inventory) and after.hardware.gpus is not None


async def test_watchdog_fails_a_machine_that_never_boots(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    rig.clock.advance(599)
    assert await rig.watchdog.check() == []
    rig.clock.advance(1)
    [failed] = await rig.watchdog.check()
    assert failed.status is Status.FAILED_COMMISSIONING
    assert set((await statuses(rig, machine.system_id)).values()) == {"aborted"}
    [message] = [m for m in await rig.event_messages(machine.system_id) if "watchdog" in m]
    assert "no call from the machine's agent in the 10 min since commissioning started" in message
    assert "powered on and network-booting" in message


async def test_watchdog_allows_a_running_script_its_timeout_plus_grace(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    [line] = await agent.plan()
    await rig.agent.start(agent.call, agent.boot, line.id)  # a one-hour script, silent
    rig.clock.advance(3600 + 59)
    assert await rig.watchdog.check() == []
    rig.clock.advance(1)
    [failed] = await rig.watchdog.check()
    assert failed.status is Status.FAILED_TESTING
    assert await statuses(rig, machine.system_id) == {"cpu-burn": "timedout"}
    [message] = [m for m in await rig.event_messages(machine.system_id) if "watchdog" in m]
    assert "silent for 61 min (limit 61 min); 1 script(s) were running" in message
    # The agent, back from the dead, is told the result has finished; its heartbeat: power off.
    await rig.agent.done(agent.call, line.id, {"exit_code": 0, "runtime": 1.0})
    assert await statuses(rig, machine.system_id) == {"cpu-burn": "timedout"}
    assert await rig.agent.heartbeat(agent.call, agent.boot) == {"action": "poweroff"}


async def test_every_call_is_a_sign_of_life(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    agent = FakeAgent(rig.agent, machine)
    for _ in range(5):
        rig.clock.advance(500)
        assert await rig.agent.heartbeat(agent.call, agent.boot) == {"action": "continue"}
        assert await rig.watchdog.check() == []
    assert (await rig.machines.get(machine.system_id)).status is Status.COMMISSIONING


async def test_after_a_restart_the_watchdog_resumes(
    rig: Rig, db: Database, clock: FakeClock
) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    clock.advance(590)
    fresh = CommissioningWatchdog(rig.settings, runs=rig.runs, clock=clock)  # a new process
    assert await fresh.load() == 1
    clock.advance(590)  # a full limit again from the restart
    assert await fresh.check() == []
    clock.advance(10)
    [failed] = await fresh.check()
    assert failed.status is Status.FAILED_COMMISSIONING
    [message] = [m for m in await rig.event_messages(machine.system_id) if "watchdog" in m]
    assert "since edgebox restarted" in message


async def test_a_new_boot_restarts_what_the_old_boot_left_running(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    old = FakeAgent(rig.agent, machine, purpose="test", boot="boot-1")
    [line] = await old.plan()
    await rig.agent.start(old.call, old.boot, line.id)
    assert await old.plan() == []  # the same boot asking again: it runs it already
    new = FakeAgent(rig.agent, machine, purpose="test", boot="boot-2")
    [again] = await new.plan()
    assert again.id == line.id
    await new.run(again.id)
    assert (await rig.machines.get(machine.system_id)).status is Status.READY


async def test_a_boot_of_an_older_run_is_told_to_reboot(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    old = FakeAgent(rig.agent, machine, purpose="test")
    await old.plan()
    await rig.service.abort(machine.system_id, RunRequest("olga"))
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    assert await rig.agent.heartbeat(old.call, old.boot) == {"action": "reboot"}
    # A boot for commissioning while the machine is testing: reboot into the right purpose.
    wrong = FakeAgent(rig.agent, machine, purpose="commission", boot="boot-3")
    assert await wrong.plan() == []
    assert await rig.agent.heartbeat(wrong.call, wrong.boot) == {"action": "reboot"}


async def test_only_commissioning_and_test_boots_may_call(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    enlisting = FakeAgent(rig.agent, machine, purpose="enlist")
    with pytest.raises(AgentAuthError, match="not for commissioning or testing"):
        await enlisting.plan()
    agent = FakeAgent(rig.agent, machine)
    [first, *_] = await agent.plan()
    other = await rig.enlist("52:54:00:00:00:99", {"nics": [], "disks": []})
    stranger = FakeAgent(rig.agent, other)
    with pytest.raises(NotFound):
        await rig.agent.script(stranger.call, first.id)
    with pytest.raises(NotFound):
        await rig.agent.start(stranger.call, stranger.boot, first.id)


async def test_a_test_with_nothing_to_test_ends_at_once(rig: Rig) -> None:
    machine = await rig.enlist(inventory={"nics": [], "disks": []})
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("disk-check",)))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    assert await agent.plan() == []
    view = await rig.service.results(machine.system_id)
    assert view is not None and view.run.state is RunState.PASSED
    [skipped] = view.results
    assert (skipped.status, skipped.note) == (ResultStatus.SKIPPED, "the inventory lists no disks")
    assert (await rig.machines.get(machine.system_id)).status is Status.READY


async def test_repeated_calls_are_harmless(rig: Rig) -> None:
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("cpu-burn",)))
    agent = FakeAgent(rig.agent, machine, purpose="test")
    [line] = await agent.plan()
    await rig.agent.start(agent.call, agent.boot, line.id)
    await rig.agent.start(agent.call, agent.boot, line.id)
    first = await rig.agent.done(agent.call, line.id, {"exit_code": 0})
    again = await rig.agent.done(agent.call, line.id, {"exit_code": 1})
    assert first.changed and not again.changed
    assert again.result.status is ResultStatus.PASSED and again.result.exit_code == 0


async def test_scripts_are_versioned_and_results_keep_their_version(rig: Rig) -> None:
    text = (
        "#!/bin/sh\n# --- edgebox script ---\n# name: fan-check\n# type: testing\n"
        "# --- end ---\necho v{}\n"
    )
    first = await rig.scripts.upload(text.format(1), "olga")
    machine = await rig.enlist()
    await rig.set_status(machine.system_id, "ready")
    await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga", ("fan-check",)))
    second = await rig.scripts.upload(text.format(2), "olga")
    assert (first.version, second.version) == (1, 2)
    agent = FakeAgent(rig.agent, machine, purpose="test")
    [line] = await agent.plan()
    assert (await rig.agent.script(agent.call, line.id)).endswith(b"echo v1\n")
    view = await rig.service.results(machine.system_id)
    assert view is not None and view.results[0].version == 1
    current, content = await rig.scripts.get("fan-check")
    assert current.version == 2 and content.endswith("echo v2\n")


async def test_unknown_or_wrong_tests_are_refused(rig: Rig) -> None:
    machine = await rig.enlist()
    with pytest.raises(InvalidInput, match="no script named 'nope'"):
        await rig.service.start(
            machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ("nope",))
        )
    with pytest.raises(InvalidInput, match="firmware-info is a commissioning script, not a test"):
        await rig.service.start(
            machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ("firmware-info",))
        )
    with pytest.raises(IllegalTransition, match="cannot test a machine that is new"):
        await rig.service.start(machine.system_id, RunKind.TESTING, RunRequest("olga"))
    assert (await rig.machines.get(machine.system_id)).status is Status.NEW


async def test_bulk_start_accepts_and_refuses_each_machine(rig: Rig) -> None:
    one = await rig.enlist()
    two = await rig.enlist("52:54:00:00:00:02", {"nics": [], "disks": []})
    await rig.set_status(two.system_id, "deployed")
    items = await rig.service.start_many(
        RunKind.COMMISSIONING,
        RunRequest("olga", ()),
        MachineFilter(),
        system_ids=["nosuch"],
    )
    by_id = {i.system_id: i for i in items}
    assert by_id["nosuch"].accepted is False and "no machine" in by_id["nosuch"].reason
    assert by_id[one.system_id].accepted and by_id[one.system_id].status == "commissioning"
    refused = by_id[two.system_id]
    assert not refused.accepted and refused.status == "deployed"
    assert "cannot commission a machine that is deployed" in refused.reason


async def test_the_fleet_summary_counts_failures_by_script(rig: Rig) -> None:
    for index in range(3):
        machine = await rig.enlist(f"52:54:00:00:01:0{index}", {"nics": [], "disks": []})
        await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga", ()))
        code = 1 if index < 2 else 0
        await FakeAgent(rig.agent, machine).run_plan({"firmware-info": {"exit_code": code}})
    summary = await rig.service.summary()
    assert summary.statuses == {"failed_commissioning": 2, "ready": 1}
    assert summary.troubles == [("firmware-info", "failed", 2)]
    assert summary.running_runs == 0


async def test_settings_choose_the_default_commissioning_tests(
    db: Database, clock: FakeClock
) -> None:
    settings = CommissioningSettings(tests=("gpu-presence", "not-installed"))
    rig = await make_rig(db, clock, settings)
    machine = await rig.enlist()
    await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    names = [p.name for p in await FakeAgent(rig.agent, machine).plan()]
    assert names == ["edgebox-inventory", "firmware-info", "gpu-presence"]
    assert dataclasses.replace(settings).timeout == 1800


async def test_a_machine_with_a_bmc_is_powered_on_to_network_boot(
    rig: Rig, db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    power = PowerService(
        PowerSettings(poll_interval=0),
        store=PowerStore(db),
        machines=MachineStore(db),
        secrets=SecretBox.open(tmp_path / "secrets.key"),
        clock=clock,
    )
    rig.service.power = power
    with_bmc = await rig.enlist()
    await power.set_bmc(with_bmc.system_id, "olga", driver="manual")
    without = await rig.enlist("52:54:00:00:00:03", {"nics": [], "disks": []})
    for machine in (with_bmc, without):
        await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    [op] = await power.recent_ops(with_bmc.system_id)
    assert (op.op, op.state.value, op.requested_by) == (PowerOp.ON_NETWORK, "queued", "olga")
    assert await power.recent_ops(without.system_id) == []
    assert (await rig.machines.get(with_bmc.system_id)).status is Status.COMMISSIONING


async def test_a_refused_power_on_is_an_event_not_a_failure(rig: Rig) -> None:
    class RefusingPower:
        async def has_bmc(self, machine_id: int) -> bool:
            return True

        async def request(
            self, system_id: str, op: PowerOp, actor: str, *, system: bool = False
        ) -> None:
            raise Conflict("the BMC is busy")

    rig.service.power = RefusingPower()
    machine = await rig.enlist()
    after = await rig.service.start(machine.system_id, RunKind.COMMISSIONING, RunRequest("olga"))
    assert after.status is Status.COMMISSIONING
    [message] = [m for m in await rig.event_messages(machine.system_id) if "power" in m]
    assert message == (
        f"{machine.hostname}: power on with network boot could not be queued: the BMC is busy; "
        "boot the machine by hand"
    )
