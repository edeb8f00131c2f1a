"""Power control: the power queue that drives the machines' BMCs (their settings are kept by
`bmc_settings`).

The queue is durable (`power_ops`). It runs one operation per machine at a time, in the order
they were asked for, at most `power.max_concurrent` at once across the site; an operation that
fails in a way retrying can help (a timeout, a busy BMC) is retried with a doubling backoff, a
fatal one (wrong password, unsupported) fails at once with the driver's message. With the
manual driver an operation waits for a person, and says so in an event. A poller queries every
BMC now and then and records changes of power state as events.

Drivers are kept per machine (IPMI and Redfish sessions are reused) and replaced when the
machine's BMC settings change. Every driver call is bounded by `power.call_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain import lifecycle
from edgebox.domain.errors import Conflict, NotFound, StorageUnavailable
from edgebox.domain.lifecycle import Action
from edgebox.domain.models import EventLevel, Machine, MachineFilter, NewEvent
from edgebox.domain.power import BootDevice, PowerOp, PowerOpState, PowerState
from edgebox.domain.settings import PowerSettings, power_target_policy
from edgebox.drivers.power.base import (
    DriverEnv,
    FatalPowerError,
    ManualActionRequired,
    PowerDriver,
    PowerError,
    RetryablePowerError,
)
from edgebox.drivers.power.registry import driver_kind
from edgebox.drivers.power.targets import TargetGuard
from edgebox.drivers.power.worker_slots import WorkerSlots
from edgebox.services.bmc_settings import BmcSettings, BmcView, DriverFactory
from edgebox.services.clock import Clock
from edgebox.services.secret_box import SecretBox, SecretError
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import BmcRecord, PowerOpRecord, PowerStore

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
RESOLVE_TIMEOUT = 5.0  # seconds to resolve a BMC's host name when it is set
BULK_LIMIT = 10_000

_ACTIONS = {
    PowerOp.ON: Action.POWER_ON,
    PowerOp.ON_NETWORK: Action.POWER_ON,
    PowerOp.OFF: Action.POWER_OFF,
    PowerOp.SOFT_OFF: Action.POWER_OFF,
    PowerOp.CYCLE: Action.POWER_CYCLE,
}
_WORDS = {
    PowerOp.ON: "power on",
    PowerOp.ON_NETWORK: "power on with network boot",
    PowerOp.OFF: "power off",
    PowerOp.SOFT_OFF: "shut down",
    PowerOp.CYCLE: "power cycle",
    PowerOp.QUERY: "power query",
    PowerOp.BOOT_DISK: "boot from disk",
}


@dataclass(frozen=True, slots=True)
class BmcTest:
    ok: bool
    power_state: PowerState
    error: str = ""
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class BulkItem:
    system_id: str
    hostname: str
    op: PowerOpRecord | None
    refused: str = ""


class PowerService:
    def __init__(
        self,
        settings: PowerSettings,
        *,
        store: PowerStore,
        machines: MachineStore,
        secrets: SecretBox,
        clock: Clock,
        kinds: DriverFactory = driver_kind,
        env: DriverEnv | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._machines = machines
        self._clock = clock
        # What every driver shares: the target check and the cap on IPMI worker processes.
        self._env = env or DriverEnv(
            TargetGuard(power_target_policy(settings)), WorkerSlots(settings.ipmi_max_workers)
        )
        self._bmcs = BmcSettings(
            store=store, machines=machines, secrets=secrets, kinds=kinds, env=self._env
        )
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self._busy: set[int] = set()  # machines with a driver call in flight
        self._drivers: dict[int, tuple[str, PowerDriver]] = {}

    # -- BMC settings -----------------------------------------------------------------------

    async def bmc(self, system_id: str) -> BmcView | None:
        return await self._bmcs.view(system_id)

    async def has_bmc(self, machine_id: int) -> bool:
        return await self._store.bmc_by_id(machine_id) is not None

    async def set_bmc(
        self,
        system_id: str,
        actor: str,
        *,
        driver: str,
        address: str = "",
        username: str = "",
        password: str | None = None,
        options: Mapping[str, object] | None = None,
    ) -> BmcView:
        """Set (replace) the machine's BMC; see `BmcSettings.set` for what is kept."""
        view = await self._bmcs.set(
            system_id, actor, driver=driver, address=address, username=username,
            password=password, options=options,
        )  # fmt: skip
        await self._forget_driver((await self._machines.get(system_id)).id)
        return view

    async def delete_bmc(self, system_id: str, actor: str) -> None:
        machine = await self._bmcs.delete(system_id, actor)
        await self._forget_driver(machine.id)

    async def seal_plain_secret_options(self) -> int:
        """Seal what an older edgebox stored of the secret options in plain text (at start)."""
        return await self._bmcs.seal_plain_secret_options()

    async def test_bmc(self, system_id: str) -> BmcTest:
        """Query the BMC now, bypassing the queue's retries: does it answer, do the
        credentials work?"""
        machine = await self._machines.get(system_id)
        record = await self._store.bmc_by_id(machine.id)
        if record is None:
            raise Conflict(f"machine {machine.hostname} has no BMC; set one first")
        if machine.id in self._busy:
            raise Conflict(
                f"machine {machine.hostname} has a power operation in flight; test again when"
                " it ends (one BMC session at a time)"
            )
        self._busy.add(machine.id)
        try:
            state = await self._call(record, lambda d: d.query())
        except PowerError as exc:
            return BmcTest(False, PowerState.ERROR, str(exc), exc.fatal)
        finally:
            self._busy.discard(machine.id)
        return BmcTest(True, state)

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self, system_id: str, op: PowerOp, actor: str, *, system: bool = False
    ) -> PowerOpRecord:
        """Queue `op`. A user's request must be allowed by the lifecycle (no power-off while
        commissioning); edgebox's own services (`system=True`) drive the machines they own."""
        machine = await self._machines.get(system_id)
        return await self._enqueue(machine, op, actor, system=system)

    async def request_many(
        self,
        op: PowerOp,
        actor: str,
        flt: MachineFilter | None = None,
        system_ids: Sequence[str] = (),
    ) -> list[BulkItem]:
        """Queue `op` for every machine the filter or the list names. A machine that cannot
        (no BMC, its state forbids it) is listed as refused with the reason; the rest go on."""
        machines: list[Machine | str] = []  # a str: a system_id that names no machine
        if system_ids:
            for system_id in dict.fromkeys(system_ids):
                try:
                    machines.append(await self._machines.get(system_id))
                except NotFound:
                    machines.append(system_id)
        if flt is not None:
            seen = {m.system_id for m in machines if isinstance(m, Machine)}
            page = await self._machines.query(flt, BULK_LIMIT)
            machines += [m for m in page.items if m.system_id not in seen]
        items = []
        for machine in machines:
            if isinstance(machine, str):
                items.append(BulkItem(machine, "", None, "no such machine"))
                continue
            try:
                record = await self._enqueue(machine, op, actor)
            except (Conflict, lifecycle.IllegalTransition) as exc:
                items.append(BulkItem(machine.system_id, machine.hostname, None, str(exc)))
            else:
                items.append(BulkItem(machine.system_id, machine.hostname, record))
        return items

    async def _enqueue(
        self, machine: Machine, op: PowerOp, actor: str, *, system: bool = False
    ) -> PowerOpRecord:
        action = _ACTIONS.get(op)
        if action is not None and not system:
            lifecycle.apply(machine.lifecycle, action)  # raises IllegalTransition
        if await self._store.bmc_by_id(machine.id) is None:
            raise Conflict(
                f"machine {machine.hostname} has no BMC: set one with `edgebox power set`"
                " (driver manual if a person powers it)"
            )
        event = NewEvent(
            "power.requested",
            f"{_WORDS[op]} requested for {machine.hostname}",
            machine=machine.system_id,
            data={"user": actor, "op": op.value},
        )
        record = await self._store.enqueue(machine.id, op, actor, event)
        self._wake.set()
        return record

    async def ops(self, op_ids: Sequence[int]) -> list[PowerOpRecord]:
        return await self._store.ops(op_ids)

    async def recent_ops(self, system_id: str, limit: int = 10) -> list[PowerOpRecord]:
        machine = await self._machines.get(system_id)
        return await self._store.recent_ops(machine.id, limit)

    async def confirm(self, system_id: str, actor: str) -> list[PowerOpRecord]:
        """A person did what waiting operations asked (the manual driver)."""
        machine = await self._machines.get(system_id)

        def describe(record: PowerOpRecord) -> NewEvent:
            return NewEvent(
                "power.done",
                f"{_WORDS[record.op]} of {machine.hostname} done by hand (confirmed by {actor})",
                machine=machine.system_id,
                data={"op": record.op.value, "op_id": record.id, "user": actor},
            )

        done = await self._store.confirm_waiting(machine.id, describe)
        if not done:
            raise Conflict(f"machine {machine.hostname} has no power operation waiting")
        return done

    # -- the queue --------------------------------------------------------------------------

    async def run(self) -> None:
        """Resume what a previous run left, then run the queue and the poller until cancelled."""
        await self.seal_plain_secret_options()
        resumed = await self._store.recover(_resumed_event)
        if resumed:
            log.info("power queue: resumed %d operation(s) left running", len(resumed))
        try:
            async with asyncio.TaskGroup() as group:
                if self._settings.poll_interval > 0:
                    group.create_task(self._poll_forever(), name="power-poll")
                await self._dispatch_forever(group)
        finally:
            for _, driver in list(self._drivers.values()):
                with contextlib.suppress(Exception):
                    await driver.close()
            self._drivers.clear()

    async def _dispatch_forever(self, group: asyncio.TaskGroup) -> None:
        while True:
            self._wake.clear()
            try:
                ops = await self._store.open_ops()
            except StorageUnavailable as exc:  # the database cannot be read now: later
                log.debug("power queue not read: %s", exc)
                await asyncio.sleep(exc.retry_after)
                continue
            next_due = self._dispatch(ops, group)
            timeout = None if next_due is None else max(0.0, next_due - self._clock.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _dispatch(self, ops: Sequence[PowerOpRecord], group: asyncio.TaskGroup) -> float | None:
        """Start the first queued operation of every idle machine; return when the next
        delayed retry is due."""
        now = self._clock.now()
        next_due = None
        heads: set[int] = set()
        for op in ops:
            if op.state != PowerOpState.QUEUED or op.machine_id in heads:
                continue
            heads.add(op.machine_id)  # FIFO per machine: only its oldest queued op may start
            if op.machine_id in self._busy:
                continue
            if op.not_before > now:
                next_due = op.not_before if next_due is None else min(next_due, op.not_before)
                continue
            self._busy.add(op.machine_id)
            group.create_task(self._execute(op), name=f"power-op-{op.id}")
        return next_due

    async def _execute(self, op: PowerOpRecord) -> None:
        try:
            async with self._slots:
                await self._execute_now(op)
        except StorageUnavailable as exc:
            await self._requeue_when_writable(op, exc)
        except Exception:
            log.exception("power operation %d crashed", op.id)
            try:
                await self._store.finish(
                    op.id,
                    PowerOpState.FAILED,
                    "internal error (see the edgebox log)",
                    None,
                    [_failed_event(op, "internal error (see the edgebox log)", op.attempts)],
                )
            except StorageUnavailable as exc:
                await self._requeue_when_writable(op, exc)
        finally:
            self._busy.discard(op.machine_id)
            self._wake.set()

    async def _requeue_when_writable(self, op: PowerOpRecord, exc: StorageUnavailable) -> None:
        """The database could not store the operation's start or its outcome. Every operation
        is safe to repeat (see `PowerStore.recover`): it is queued again as soon as the
        database takes writes, and its machine runs nothing else until then (FIFO)."""
        log.warning(
            "power op %d (%s %s) interrupted: %s; it runs again once the database takes writes",
            op.id,
            op.op.value,
            op.system_id,
            exc,
        )
        while True:
            await asyncio.sleep(exc.retry_after)
            try:
                await self._store.retry_later(op.id, self._clock.now(), f"interrupted: {exc}")
                return
            except StorageUnavailable as again:
                exc = again

    async def _execute_now(self, op: PowerOpRecord) -> None:
        record = await self._store.start(op.id)
        bmc = await self._store.bmc_by_id(op.machine_id)
        if bmc is None:
            message = "the machine's BMC was removed"
            await self._store.finish(
                op.id, PowerOpState.FAILED, message, None, [_failed_event(op, message, 0)]
            )
            return
        try:
            state = await self._call(bmc, lambda driver: _drive(driver, op.op))
        except ManualActionRequired as exc:
            await self._store.finish(
                op.id,
                PowerOpState.WAITING,
                exc.message,
                PowerState.UNKNOWN,
                [
                    NewEvent(
                        "power.waiting",
                        f"waiting for a person: {exc.message}; then confirm with"
                        f" `edgebox power confirm {op.system_id}`",
                        machine=op.system_id,
                        level=EventLevel.WARNING,
                        data={"op": op.op.value, "op_id": op.id},
                    )
                ],
            )
        except PowerError as exc:
            if not exc.fatal and record.attempts < self._settings.attempts:
                delay = min(MAX_BACKOFF, self._settings.retry_backoff * 2 ** (record.attempts - 1))
                log.info(
                    "power op %d (%s %s) failed, retry %d/%d in %.1fs: %s",
                    op.id,
                    op.op.value,
                    op.system_id,
                    record.attempts + 1,
                    self._settings.attempts,
                    delay,
                    exc,
                )
                await self._store.retry_later(op.id, self._clock.now() + delay, str(exc))
                return
            await self._store.finish(
                op.id,
                PowerOpState.FAILED,
                str(exc),
                PowerState.ERROR,
                [_failed_event(op, str(exc), record.attempts, fatal=exc.fatal)],
            )
        else:
            await self._store.finish(op.id, PowerOpState.DONE, "", state, [_done_event(op, state)])

    async def _call(
        self, bmc: BmcRecord, fn: Callable[[PowerDriver], Awaitable[PowerState | None]]
    ) -> Any:
        """Run `fn` on the machine's driver under the call deadline; every failure comes out
        as a PowerError naming the BMC."""
        driver = await self._driver(bmc)
        limit = self._settings.call_timeout
        try:
            async with asyncio.timeout(limit):
                return await fn(driver)
        except TimeoutError:
            # The driver may be stuck mid-call: start afresh next time.
            await self._forget_driver(bmc.machine_id)
            raise RetryablePowerError(bmc.address, f"no answer within {limit:g} s") from None
        except PowerError:
            raise
        except Exception as exc:  # a driver bug must not look like a BMC answer
            log.exception("power driver %s failed on %s", bmc.driver, bmc.address)
            await self._forget_driver(bmc.machine_id)
            raise RetryablePowerError(
                bmc.address, f"the {bmc.driver} driver failed unexpectedly: {exc!r}"
            ) from None

    async def _driver(self, bmc: BmcRecord) -> PowerDriver:
        fingerprint = json.dumps(
            [
                bmc.driver,
                bmc.address,
                bmc.username,
                (bmc.secret or b"").hex(),
                (bmc.secret_options or b"").hex(),
                bmc.options,
            ],
            sort_keys=True,
        )
        cached = self._drivers.get(bmc.machine_id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        await self._forget_driver(bmc.machine_id)
        try:
            kind, config = self._bmcs.config(bmc)
        except (ValueError, SecretError) as exc:
            raise FatalPowerError(bmc.address, str(exc)) from None
        driver = kind.create(config, self._env)
        self._drivers[bmc.machine_id] = (fingerprint, driver)
        return driver

    async def _forget_driver(self, machine_id: int) -> None:
        cached = self._drivers.pop(machine_id, None)
        if cached is not None:
            with contextlib.suppress(Exception):
                await cached[1].close()

    # -- polling ----------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_interval)
            try:
                await self.poll_once()
            except StorageUnavailable as exc:  # the next round asks again
                log.debug("power poll not done: %s", exc)

    async def poll_once(self) -> None:
        """Query every BMC that is idle (manual machines have nothing to ask)."""
        bmcs = await self._store.bmcs(drivers_excluded=("manual",))
        async with asyncio.TaskGroup() as group:
            for bmc in bmcs:
                if bmc.machine_id not in self._busy:
                    self._busy.add(bmc.machine_id)
                    group.create_task(self._poll(bmc))

    async def _poll(self, bmc: BmcRecord) -> None:
        try:
            async with self._slots:
                try:
                    state = await self._call(bmc, lambda d: d.query())
                    error = ""
                except PowerError as exc:
                    state, error = PowerState.ERROR, str(exc)

                def describe(previous: PowerState) -> NewEvent | None:
                    if state == PowerState.ERROR:
                        return NewEvent(
                            "power.query_failed",
                            f"power query failed: {error}",
                            machine=bmc.system_id,
                            level=EventLevel.WARNING,
                            data={"previous": previous.value},
                        )
                    return NewEvent(
                        "power.changed",
                        f"power state {previous.value} → {state.value}",
                        machine=bmc.system_id,
                        data={"previous": previous.value, "state": state.value},
                    )

                try:
                    await self._store.set_power_state(bmc.machine_id, state, describe)
                except StorageUnavailable as exc:  # the next poll records it
                    log.debug("power state of %s not recorded: %s", bmc.system_id, exc)
        finally:
            self._busy.discard(bmc.machine_id)


async def _drive(driver: PowerDriver, op: PowerOp) -> PowerState | None:  # noqa: PLR0911
    """Carry out one operation; the power state it leaves the machine in (None: not known
    yet, e.g. a shutdown the OS is still doing)."""
    if op is PowerOp.ON:
        await driver.power_on()
        return PowerState.ON
    if op is PowerOp.ON_NETWORK:
        await driver.set_boot_device(BootDevice.NETWORK, once=True)
        if await driver.query() == PowerState.ON:
            await driver.power_cycle()  # it must boot again to see the network boot
        else:
            await driver.power_on()
        return PowerState.ON
    if op is PowerOp.OFF:
        await driver.power_off()
        return PowerState.OFF
    if op is PowerOp.SOFT_OFF:
        await driver.power_off(soft=True)
        return None
    if op is PowerOp.CYCLE:
        await driver.power_cycle()
        return PowerState.ON
    if op is PowerOp.BOOT_DISK:
        await driver.set_boot_device(BootDevice.DISK, once=False)
        return None
    return await driver.query()


def _resumed_event(op: PowerOpRecord) -> NewEvent:
    return NewEvent(
        "power.resumed",
        f"{_WORDS[op.op]} was in progress when edgebox stopped; running it again",
        machine=op.system_id,
        data={"op": op.op.value, "op_id": op.id, "attempts": op.attempts},
    )


def _done_event(op: PowerOpRecord, state: PowerState | None) -> NewEvent:
    outcome = f", now {state.value}" if state is not None else ""
    return NewEvent(
        "power.done",
        f"{_WORDS[op.op]} done{outcome}",
        machine=op.system_id,
        data={"op": op.op.value, "op_id": op.id, "state": state.value if state else None},
    )


def _failed_event(op: PowerOpRecord, error: str, attempts: int, *, fatal: bool = False) -> NewEvent:
    why = "it cannot succeed without a change" if fatal else f"after {attempts} tries"
    return NewEvent(
        "power.failed",
        f"{_WORDS[op.op]} failed ({why}): {error}",
        machine=op.system_id,
        level=EventLevel.ERROR,
        data={"op": op.op.value, "op_id": op.id, "fatal": fatal, "attempts": attempts},
    )
