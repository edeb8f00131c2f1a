"""The power queue and BMC settings over a real database, with an in-memory BMC as the driver.

The drivers themselves are tested against real BMC simulators (tests/integration/test_power_*);
here the subject is the queue: ordering, the concurrency bound, retries for retryable errors
only, manual waits, recovery after a crash, polling, and secrets at rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgebox.domain.errors import Conflict, InvalidInput
from edgebox.domain.lifecycle import IllegalTransition
from edgebox.domain.models import MachineFilter
from edgebox.domain.power import BootDevice, PowerOp, PowerOpState, PowerState
from edgebox.domain.settings import PowerSettings
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverKind,
    FatalPowerError,
    ManualActionRequired,
    OptionSpec,
    PowerError,
    RetryablePowerError,
)
from edgebox.services.machine_service import MachineService
from edgebox.services.power_service import PowerService
from edgebox.services.secret_box import SecretBox
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import PowerStore
from tests.conftest import FakeClock, running_database


@dataclass
class FakeBmc:
    state: PowerState = PowerState.OFF
    boot: list[tuple[BootDevice, bool]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    failures: list[PowerError] = field(default_factory=list)  # raised by the next calls
    delay: float = 0.0
    password_seen: str = ""


@dataclass
class Lab:
    bmcs: dict[str, FakeBmc] = field(default_factory=dict)
    in_flight: int = 0
    most_in_flight: int = 0
    created: int = 0
    closed: int = 0

    def kind(self, name: str) -> DriverKind:
        if name not in ("fake", "manual"):
            raise ValueError(f"unknown power driver {name!r} (known: fake, manual)")
        return DriverKind(
            name=name,
            description="test BMC",
            options={"port": OptionSpec(int, 623, "UDP port", minimum=1, maximum=65535)},
            needs_address=name == "fake",
            create=lambda config, env: FakeDriver(self, config),
        )


class FakeDriver:
    def __init__(self, lab: Lab, config: BmcConfig) -> None:
        self.lab = lab
        self.config = config
        lab.created += 1

    async def _step(self, name: str) -> FakeBmc:
        if self.config.driver == "manual":
            raise ManualActionRequired("", f"{name} this machine by hand")
        bmc = self.lab.bmcs.setdefault(self.config.address, FakeBmc())
        bmc.password_seen = self.config.password
        self.lab.in_flight += 1
        self.lab.most_in_flight = max(self.lab.most_in_flight, self.lab.in_flight)
        try:
            await asyncio.sleep(bmc.delay)
            bmc.calls.append(name)
            if bmc.failures:
                raise bmc.failures.pop(0)
            return bmc
        finally:
            self.lab.in_flight -= 1

    async def power_on(self) -> None:
        (await self._step("on")).state = PowerState.ON

    async def power_off(self, *, soft: bool = False) -> None:
        (await self._step("soft-off" if soft else "off")).state = PowerState.OFF

    async def power_cycle(self) -> None:
        (await self._step("cycle")).state = PowerState.ON

    async def query(self) -> PowerState:
        return (await self._step("query")).state

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None:
        (await self._step("boot")).boot.append((device, once))

    async def close(self) -> None:
        self.lab.closed += 1


@dataclass
class Rig:
    power: PowerService
    machines: MachineService
    db: Database
    lab: Lab
    events: EventStore

    async def machine(self, mac: str, address: str = "", driver: str = "fake") -> str:
        machine = await self.machines.create([mac], "test")
        if driver:
            await self.power.set_bmc(
                machine.system_id,
                "test",
                driver=driver,
                address=address or mac,
                username="admin",
                password="s3cret-pass",
            )
        return machine.system_id

    async def wait(self, op_id: int, states: set[PowerOpState], within: float = 5.0) -> None:
        # Polling the table is the point: the state must be durable, not just in memory.
        async with asyncio.timeout(within):
            while (await self.power.ops([op_id]))[0].state not in states:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    async def event_types(self, system_id: str) -> list[str]:
        return [e.type for e in await self.events.after(0, 1000, machine=system_id)]


def make_power(
    db: Database, clock: FakeClock, lab: Lab, tmp: Path, **settings: float
) -> PowerService:
    config = {"retry_backoff": 0.0, "poll_interval": 0, "attempts": 3, "call_timeout": 2.0}
    config.update(settings)
    return PowerService(
        PowerSettings(**config),  # type: ignore[arg-type]
        store=PowerStore(db),
        machines=MachineStore(db),
        secrets=SecretBox.open(tmp / "secrets.key"),
        clock=clock,
        kinds=lab.kind,
    )


@contextlib.asynccontextmanager
async def running(power: PowerService) -> AsyncIterator[None]:
    task = asyncio.create_task(power.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> Rig:
    lab = Lab()
    return Rig(
        make_power(db, clock, lab, tmp_path),
        MachineService(MachineStore(db)),
        db,
        lab,
        EventStore(db),
    )


async def test_power_on_with_network_boot_sets_boot_once_then_powers_on(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:01")
    async with running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON_NETWORK, "test")
        assert op.state == PowerOpState.QUEUED
        await rig.wait(op.id, {PowerOpState.DONE})
    bmc = rig.lab.bmcs["52:54:00:00:01:01"]
    assert bmc.calls == ["boot", "query", "on"]
    assert bmc.boot == [(BootDevice.NETWORK, True)]
    assert (await rig.machines.get(system_id)).power_state == PowerState.ON
    assert bmc.password_seen == "s3cret-pass"
    types = await rig.event_types(system_id)
    assert "power.requested" in types and "power.done" in types


async def test_network_boot_of_a_running_machine_cycles_it(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:02")
    rig.lab.bmcs["52:54:00:00:01:02"] = FakeBmc(state=PowerState.ON)
    async with running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON_NETWORK, "test")
        await rig.wait(op.id, {PowerOpState.DONE})
    assert rig.lab.bmcs["52:54:00:00:01:02"].calls == ["boot", "query", "cycle"]


async def test_operations_on_one_machine_run_one_at_a_time_in_order(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:03")
    rig.lab.bmcs["52:54:00:00:01:03"] = FakeBmc(delay=0.05)
    ops = [
        await rig.power.request(system_id, op, "test")
        for op in (PowerOp.ON, PowerOp.OFF, PowerOp.CYCLE, PowerOp.QUERY)
    ]
    async with running(rig.power):
        await rig.wait(ops[-1].id, {PowerOpState.DONE})
    assert rig.lab.bmcs["52:54:00:00:01:03"].calls == ["on", "off", "cycle", "query"]
    assert rig.lab.most_in_flight == 1


async def test_a_repeated_request_while_queued_is_the_same_operation(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:04")
    first = await rig.power.request(system_id, PowerOp.ON, "test")
    again = await rig.power.request(system_id, PowerOp.ON, "test")
    assert again.id == first.id


async def test_the_global_bound_limits_calls_in_flight(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    lab = Lab()
    power = make_power(db, clock, lab, tmp_path, max_concurrent=3)
    rig = Rig(power, MachineService(MachineStore(db)), db, lab, EventStore(db))
    ids = [await rig.machine(f"52:54:00:00:02:{i:02x}") for i in range(12)]
    for mac in (f"52:54:00:00:02:{i:02x}" for i in range(12)):
        lab.bmcs[mac] = FakeBmc(delay=0.05)
    items = await power.request_many(PowerOp.ON, "test", system_ids=ids)
    async with running(power):
        for item in items:
            assert item.op is not None
            await rig.wait(item.op.id, {PowerOpState.DONE})
    assert lab.most_in_flight == 3


async def test_retryable_errors_are_retried_then_succeed(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:05")
    rig.lab.bmcs["52:54:00:00:01:05"] = FakeBmc(
        failures=[RetryablePowerError("10.0.0.5", "busy"), RetryablePowerError("10.0.0.5", "busy")]
    )
    async with running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON, "test")
        await rig.wait(op.id, {PowerOpState.DONE, PowerOpState.FAILED})
    done = (await rig.power.ops([op.id]))[0]
    assert done.state == PowerOpState.DONE and done.attempts == 3


async def test_retryable_errors_fail_after_the_last_attempt_with_the_message(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:06")
    rig.lab.bmcs["52:54:00:00:01:06"] = FakeBmc(
        failures=[RetryablePowerError("10.0.0.6", "no answer within 5 s")] * 5
    )
    async with running(rig.power):
        op = await rig.power.request(system_id, PowerOp.OFF, "test")
        await rig.wait(op.id, {PowerOpState.DONE, PowerOpState.FAILED})
    failed = (await rig.power.ops([op.id]))[0]
    assert failed.state == PowerOpState.FAILED and failed.attempts == 3
    assert "BMC 10.0.0.6: no answer within 5 s" in failed.error
    assert (await rig.machines.get(system_id)).power_state == PowerState.ERROR
    events = await rig.events.after(0, 100, machine=system_id)
    assert any(e.type == "power.failed" and "after 3 tries" in e.message for e in events)


async def test_fatal_errors_fail_at_once(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:07")
    rig.lab.bmcs["52:54:00:00:01:07"] = FakeBmc(
        failures=[FatalPowerError("10.0.0.7", "rejected the credentials for user admin")]
    )
    async with running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON, "test")
        await rig.wait(op.id, {PowerOpState.DONE, PowerOpState.FAILED})
    failed = (await rig.power.ops([op.id]))[0]
    assert failed.state == PowerOpState.FAILED and failed.attempts == 1
    assert "rejected the credentials" in failed.error


async def test_a_hung_driver_call_times_out_as_retryable(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    lab = Lab()
    power = make_power(db, clock, lab, tmp_path, call_timeout=1.0, attempts=1)
    rig = Rig(power, MachineService(MachineStore(db)), db, lab, EventStore(db))
    system_id = await rig.machine("52:54:00:00:01:08")
    lab.bmcs["52:54:00:00:01:08"] = FakeBmc(delay=30)
    async with running(power):
        op = await power.request(system_id, PowerOp.ON, "test")
        await rig.wait(op.id, {PowerOpState.FAILED}, within=5)
    assert "no answer within 1 s" in (await power.ops([op.id]))[0].error
    assert lab.closed >= 1  # the stuck driver was dropped, a fresh one is made next time


async def test_manual_driver_waits_for_a_person_and_says_so(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:09", driver="manual")
    async with running(rig.power):
        op = await rig.power.request(system_id, PowerOp.ON_NETWORK, "test")
        await rig.wait(op.id, {PowerOpState.WAITING})
        events = await rig.events.after(0, 100, machine=system_id)
        waiting = [e for e in events if e.type == "power.waiting"]
        assert waiting and "by hand" in waiting[0].message
        assert f"edgebox power confirm {system_id}" in waiting[0].message
        done = await rig.power.confirm(system_id, "operator")
    assert [d.state for d in done] == [PowerOpState.DONE]
    with pytest.raises(Conflict):
        await rig.power.confirm(system_id, "operator")


async def test_running_operations_resume_after_a_crash(tmp_path: Path, clock: FakeClock) -> None:
    lab = Lab()
    async with running_database(tmp_path / "edgebox.db", clock) as db:
        power = make_power(db, clock, lab, tmp_path)
        rig = Rig(power, MachineService(MachineStore(db)), db, lab, EventStore(db))
        system_id = await rig.machine("52:54:00:00:01:0a")
        op = await power.request(system_id, PowerOp.ON, "test")
        await PowerStore(db).start(op.id)  # running when the process "died"
    async with running_database(tmp_path / "edgebox.db", clock) as db:
        power = make_power(db, clock, lab, tmp_path)
        async with running(power):
            rig = Rig(power, MachineService(MachineStore(db)), db, lab, EventStore(db))
            await rig.wait(op.id, {PowerOpState.DONE})
        assert "power.resumed" in await rig.event_types(system_id)
        assert lab.bmcs["52:54:00:00:01:0a"].calls == ["on"]
        assert (await power.ops([op.id]))[0].attempts == 2


async def test_polling_records_changes_as_events(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:0b")
    rig.lab.bmcs["52:54:00:00:01:0b"] = FakeBmc(state=PowerState.ON)
    await rig.power.poll_once()
    assert (await rig.machines.get(system_id)).power_state == PowerState.ON
    await rig.power.poll_once()  # no change: no second event
    rig.lab.bmcs["52:54:00:00:01:0b"].state = PowerState.OFF
    await rig.power.poll_once()
    changes = [
        e.message
        for e in await rig.events.after(0, 100, machine=system_id)
        if e.type == "power.changed"
    ]
    assert changes == ["power state unknown → on", "power state on → off"]
    rig.lab.bmcs["52:54:00:00:01:0b"].failures = [RetryablePowerError("x", "no answer")]
    await rig.power.poll_once()
    assert (await rig.machines.get(system_id)).power_state == PowerState.ERROR
    assert "power.query_failed" in await rig.event_types(system_id)


async def test_manual_machines_are_not_polled(rig: Rig) -> None:
    await rig.machine("52:54:00:00:01:0c", driver="manual")
    made = rig.lab.created  # setting the BMC made (and dropped) one driver to check it
    await rig.power.poll_once()
    assert rig.lab.created == made


async def test_requests_follow_the_lifecycle_and_need_a_bmc(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:0d")
    await rig.db.write(  # as commissioning leaves it: users may not power it meanwhile
        lambda tx: tx.conn.execute(
            "UPDATE machines SET status = 'commissioning' WHERE system_id = ?", (system_id,)
        )
    )
    with pytest.raises(IllegalTransition, match="cannot power-off a machine that is commiss"):
        await rig.power.request(system_id, PowerOp.OFF, "test")
    # ... but the service that commissions it may.
    op = await rig.power.request(system_id, PowerOp.ON_NETWORK, "commissioning", system=True)
    assert op.state == PowerOpState.QUEUED
    bare = await rig.machine("52:54:00:00:01:0e", driver="")
    with pytest.raises(Conflict, match="has no BMC"):
        await rig.power.request(bare, PowerOp.ON, "test")


async def test_bulk_requests_refuse_some_and_queue_the_rest(rig: Rig) -> None:
    with_bmc = await rig.machine("52:54:00:00:03:01")
    bare = await rig.machine("52:54:00:00:03:02", driver="")
    items = await rig.power.request_many(PowerOp.ON, "test", system_ids=[with_bmc, bare, "nosuch"])
    by_id = {i.system_id: i for i in items}
    assert by_id[with_bmc].op is not None and not by_id[with_bmc].refused
    assert "has no BMC" in by_id[bare].refused
    assert by_id["nosuch"].refused == "no such machine"
    by_filter = await rig.power.request_many(PowerOp.OFF, "test", flt=MachineFilter())
    assert len(by_filter) == 2


async def test_bmc_settings_are_checked_and_the_password_never_shown(rig: Rig) -> None:
    system_id = await rig.machine("52:54:00:00:01:0f", driver="")
    with pytest.raises(InvalidInput, match="unknown power driver 'ipmy'"):
        await rig.power.set_bmc(system_id, "t", driver="ipmy", address="10.0.0.1")
    with pytest.raises(InvalidInput, match="needs the BMC's address"):
        await rig.power.set_bmc(system_id, "t", driver="fake")
    with pytest.raises(InvalidInput, match="option port: expected an integer from 1 to 65535"):
        await rig.power.set_bmc(
            system_id, "t", driver="fake", address="10.0.0.1", options={"port": 0}
        )
    view = await rig.power.set_bmc(
        system_id, "t", driver="fake", address="10.0.0.1", username="root", password="pw-123456"
    )
    assert view.has_password and view.options == {"port": 623}
    assert "pw-123456" not in repr(view)
    # A change without a password keeps the stored one while the BMC stays where it was...
    view = await rig.power.set_bmc(
        system_id, "t", driver="fake", address="10.0.0.1", username="admin"
    )
    assert view.has_password and view.dropped == ()
    assert (await rig.power.test_bmc(system_id)).ok
    assert rig.lab.bmcs["10.0.0.1"].password_seen == "pw-123456"
    # ... and drops it when the BMC points elsewhere: it must be given again.
    view = await rig.power.set_bmc(system_id, "t", driver="fake", address="10.0.0.2")
    assert not view.has_password and view.dropped == ("password",)
    assert (await rig.power.test_bmc(system_id)).ok
    assert rig.lab.bmcs["10.0.0.2"].password_seen == ""


async def test_passwords_are_encrypted_at_rest_with_a_private_key_file(
    rig: Rig, tmp_path: Path
) -> None:
    await rig.machine("52:54:00:00:01:10")
    rows = await rig.db.fetchall("SELECT secret FROM bmcs")
    assert rows and all(b"s3cret-pass" not in bytes(r[0]) for r in rows)
    key = tmp_path / "secrets.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and key.stat().st_size == 32


async def test_a_sealed_password_moved_to_another_machine_does_not_open(rig: Rig) -> None:
    first = await rig.machine("52:54:00:00:01:11")
    second = await rig.machine("52:54:00:00:01:12")
    await rig.db.write(
        lambda tx: tx.conn.execute(
            "UPDATE bmcs SET secret = (SELECT secret FROM bmcs b JOIN machines m "
            "ON m.id = b.machine_id WHERE m.system_id = ?) WHERE machine_id = "
            "(SELECT id FROM machines WHERE system_id = ?)",
            (first, second),
        )
    )
    result = await rig.power.test_bmc(second)
    assert not result.ok and result.fatal and "does not open" in result.error
