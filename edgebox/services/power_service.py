"""Power control: machines' BMC settings, and the power queue that drives the BMCs.

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
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain import lifecycle
from edgebox.domain.errors import Conflict, InvalidInput, NotFound
from edgebox.domain.lifecycle import Action
from edgebox.domain.models import EventLevel, Machine, MachineFilter, NewEvent
from edgebox.domain.power import BootDevice, PowerOp, PowerOpState, PowerState
from edgebox.domain.settings import PowerSettings, power_target_policy
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    DriverKind,
    FatalPowerError,
    ManualActionRequired,
    PowerDriver,
    PowerError,
    RetryablePowerError,
    check_options,
)
from edgebox.drivers.power.registry import driver_kind
from edgebox.drivers.power.targets import TargetGuard, TargetRefused
from edgebox.drivers.power.worker_slots import WorkerSlots
from edgebox.services.bmc_secrets import BmcRequest, BmcSecrets, MergedBmc, shown_secrets
from edgebox.services.clock import Clock
from edgebox.services.secret_box import SecretBox, SecretError
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import BmcRecord, BmcRow, PowerOpRecord, PowerStore

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
class BmcView:
    """A machine's BMC as the API shows it: never a secret, only whether it is set."""

    driver: str
    address: str
    username: str
    has_password: bool
    options: Mapping[str, Any]  # the options that are not secret
    secrets: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # has_k_g, ...
    dropped: tuple[str, ...] = ()  # set_bmc: stored secrets dropped (the BMC points elsewhere)


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


DriverFactory = Callable[[str], DriverKind]


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
        self._secrets = BmcSecrets(secrets)
        self._clock = clock
        self._kinds = kinds
        # What every driver shares: the target check and the cap on IPMI worker processes.
        self._env = env or DriverEnv(
            TargetGuard(power_target_policy(settings)), WorkerSlots(settings.ipmi_max_workers)
        )
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self._busy: set[int] = set()  # machines with a driver call in flight
        self._drivers: dict[int, tuple[str, PowerDriver]] = {}

    # -- BMC settings -----------------------------------------------------------------------

    async def bmc(self, system_id: str) -> BmcView | None:
        await self._machines.get(system_id)  # NotFound for an unknown machine
        record = await self._store.bmc(system_id)
        return self._view(record) if record else None

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
        """Set (replace) the machine's BMC. A secret not given (a None password, a secret
        option left out) keeps the stored one, unless the BMC now points elsewhere: see
        `bmc_secrets`."""
        machine = await self._machines.get(system_id)
        kind, request = self._bmc_request(driver, address, username, password, options or {})
        # Checked with what the stored secrets would make of it; decided again below, in the
        # transaction, with the row as it is then.
        merged = self._secrets.merge(kind, request, await self._store.bmc_by_id(machine.id))
        config = BmcConfig(
            driver, request.address, username, merged.password or "", merged.all_options
        )
        await _check_config(kind, config, self._env)
        await self._check_targets(kind, config)
        dropped: tuple[str, ...] = ()

        def decide(stored: BmcRecord | None) -> BmcRow:
            nonlocal dropped
            final = self._secrets.merge(kind, request, stored)
            sealed = self._secrets.seal(machine.id, final)
            dropped = final.dropped
            return BmcRow(
                driver,
                request.address,
                username,
                sealed.secret,
                final.options,
                sealed.secret_options,
                _bmc_set_event(machine, actor, request, final),
            )

        await self._store.set_bmc(machine.id, decide)
        if dropped:
            log.info(
                "bmc secrets dropped system_id=%s dropped=%s user=%s: the BMC points elsewhere",
                machine.system_id,
                ",".join(dropped),
                actor,
            )
        await self._forget_driver(machine.id)
        view = await self.bmc(system_id)
        assert view is not None
        return dataclasses.replace(view, dropped=dropped)

    def _bmc_request(
        self,
        driver: str,
        address: str,
        username: str,
        password: str | None,
        options: Mapping[str, object],
    ) -> tuple[DriverKind, BmcRequest]:
        try:
            kind = self._kinds(driver)
        except ValueError as exc:
            raise InvalidInput("driver", str(exc)) from None
        try:
            checked = check_options(kind, options)
        except ValueError as exc:
            raise InvalidInput("options", str(exc)) from None
        if kind.needs_address and not address.strip():
            raise InvalidInput("address", f"the {driver} driver needs the BMC's address")
        request = BmcRequest(
            driver, address.strip(), username, password, checked, frozenset(options)
        )
        return kind, request

    async def _check_targets(self, kind: DriverKind, config: BmcConfig) -> None:
        """Refuse a BMC whose address or URLs are refused targets now, rather than at its
        first call. A name that does not resolve now is let through: it is checked again at
        every call, and a BMC may be set before its DNS name exists."""
        for target in kind.targets(config):
            field = "address" if target.source == "address" else "options"
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    await self._env.targets.addresses(target.host, target.port)
            except TargetRefused as exc:
                raise InvalidInput(field, f"{target.source}: {exc}") from None
            except (OSError, TimeoutError) as exc:
                log.info(
                    "bmc target not resolved now, checked at each call host=%s: %s",
                    target.host,
                    exc,
                )

    async def delete_bmc(self, system_id: str, actor: str) -> None:
        machine = await self._machines.get(system_id)
        event = NewEvent(
            "power.bmc_deleted",
            f"BMC of {machine.hostname} removed",
            machine=machine.system_id,
            data={"user": actor},
        )
        if not await self._store.delete_bmc(machine.id, event):
            raise NotFound("BMC of machine", system_id)
        await self._forget_driver(machine.id)

    async def seal_plain_secret_options(self) -> int:
        """Seal the secret options (k_g, headers) that an older edgebox stored among the plain
        options, and remove them from there. Returns how many BMCs were changed."""
        moved = 0
        for record in await self._store.bmcs():
            try:
                kind = self._kinds(record.driver)
            except ValueError:
                continue
            if not any(name in record.options for name in kind.secret_options):
                continue
            try:
                opened = self._secrets.open(record, kind)
            except SecretError as exc:
                log.warning("bmc secrets of %s do not open: %s", record.system_id, exc)
                continue
            merged = MergedBmc(opened.password, opened.secret_options, {}, ())
            sealed = self._secrets.seal(record.machine_id, merged)
            plain = {k: v for k, v in record.options.items() if k not in kind.secret_options}
            if await self._store.move_secret_options(record, plain, sealed.secret_options):
                moved += 1
        if moved:
            log.info("sealed the secret options of %d BMC(s) stored in plain text", moved)
        return moved

    def _view(self, record: BmcRecord) -> BmcView:
        try:
            kind: DriverKind | None = self._kinds(record.driver)
        except ValueError:
            kind = None
        secret_names = kind.secret_options if kind is not None else ()
        shown: dict[str, Any] = {}
        if kind is not None:
            try:
                shown = shown_secrets(kind, self._secrets.open(record, kind))
            except SecretError:
                shown = {f"has_{name}": True for name in secret_names}
        return BmcView(
            record.driver,
            record.address,
            record.username,
            record.secret is not None,
            {k: v for k, v in record.options.items() if k not in secret_names},
            shown,
        )

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
            next_due = self._dispatch(await self._store.open_ops(), group)
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
        except Exception:
            log.exception("power operation %d crashed", op.id)
            await self._store.finish(
                op.id,
                PowerOpState.FAILED,
                "internal error (see the edgebox log)",
                None,
                [_failed_event(op, "internal error (see the edgebox log)", op.attempts)],
            )
        finally:
            self._busy.discard(op.machine_id)
            self._wake.set()

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
            kind = self._kinds(bmc.driver)
            opened = self._secrets.open(bmc, kind)
            options = check_options(kind, {**bmc.options, **opened.secret_options})
        except (ValueError, SecretError) as exc:
            raise FatalPowerError(bmc.address, str(exc)) from None
        config = BmcConfig(bmc.driver, bmc.address, bmc.username, opened.password or "", options)
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
            await self.poll_once()

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

                await self._store.set_power_state(bmc.machine_id, state, describe)
        finally:
            self._busy.discard(bmc.machine_id)


async def _check_config(kind: DriverKind, config: BmcConfig, env: DriverEnv) -> None:
    """Make (and drop) a driver: what only the driver can check (a webhook's URLs, a regular
    expression, a Redfish address) is refused now, not at the first power operation."""
    try:
        driver = kind.create(config, env)
    except (ValueError, PowerError) as exc:
        message = exc.message if isinstance(exc, PowerError) else str(exc)
        field = "address" if message.startswith("address") else "options"
        raise InvalidInput(field, message) from None
    await driver.close()


def _bmc_set_event(
    machine: Machine, actor: str, request: BmcRequest, merged: MergedBmc
) -> NewEvent:
    """The event of a BMC set: names of secrets at most, never a value."""
    message = f"BMC of {machine.hostname} set: driver {request.driver}" + (
        f" at {request.address}" if request.address else ""
    )
    if merged.dropped:
        message += (
            f"; the stored {', '.join(merged.dropped)} dropped, as the driver, address or a"
            " target option changed: set them again with the new settings"
        )
    return NewEvent(
        "power.bmc_set",
        message,
        machine=machine.system_id,
        data={
            "user": actor,
            "driver": request.driver,
            "address": request.address,
            "username": request.username,
            "secrets_dropped": list(merged.dropped),
        },
    )


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
