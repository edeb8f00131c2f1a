"""Commissioning and testing, as people ask for them: start runs, abort them, read results.

`commission` runs every commissioning script (the inventory first) and then the chosen tests;
`test` runs the chosen tests. The lifecycle table decides whether the machine may (New, Ready,
Failed and Broken machines go to Commissioning; Testing returns to where it came from), and the
run, its planned results, the machine's new status and the event are one transaction. The
machine's agent then does the work (`script_agent.py`); the watchdog ends what goes silent.

Power: edgebox does not need to drive power to commission (a person or the lab boots the
machine). When the machine has a BMC, `_network_boot` asks the power queue to power it on with
a one-time network boot; that is the single place where commissioning touches power.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgebox.domain import lifecycle
from edgebox.domain.commissioning_settings import CommissioningSettings
from edgebox.domain.errors import EdgeboxError, InvalidInput, NotFound
from edgebox.domain.lifecycle import Action
from edgebox.domain.models import EventLevel, Machine, MachineFilter, NewEvent
from edgebox.domain.power import PowerOp
from edgebox.domain.script_runs import (
    RunKind,
    ScriptResult,
    ScriptRun,
    StoredScript,
    choose_scripts,
    plan_run,
)
from edgebox.services.commissioning_watchdog import CommissioningWatchdog
from edgebox.services.event_service import EventService
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.run_reads import FleetSummary
from edgebox.storage.run_store import RunStart, RunStore

log = logging.getLogger(__name__)

COMMISSIONING_ACTIONS = (Action.COMMISSION, Action.TEST, Action.ABORT)
KIND_OF_ACTION = {Action.COMMISSION: RunKind.COMMISSIONING, Action.TEST: RunKind.TESTING}
BULK_LIMIT = 10_000
MAX_TESTS = 200


class NetworkBootPower(Protocol):
    """What commissioning needs of the power queue (`PowerService`)."""

    async def has_bmc(self, machine_id: int) -> bool: ...

    async def request(
        self, system_id: str, op: PowerOp, actor: str, *, system: bool = False
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class RunRequest:
    actor: str
    tests: tuple[str, ...] | None = None  # None: the default tests
    comment: str = ""
    # script name -> parameter name -> value, over the metadata's defaults for this run
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BulkItem:
    system_id: str
    hostname: str
    accepted: bool
    status: str = ""  # the machine's status after (accepted) or now (refused)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunView:
    run: ScriptRun
    results: list[ScriptResult]


@dataclass(frozen=True, slots=True)
class ResultDetail:
    result: ScriptResult
    run: ScriptRun
    output: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # stream: (data, size)


class CommissioningService:
    def __init__(
        self,
        settings: CommissioningSettings,
        *,
        runs: RunStore,
        machines: MachineStore,
        watchdog: CommissioningWatchdog,
        events: EventService,
        power: NetworkBootPower | None = None,
    ) -> None:
        self._settings = settings
        self._runs = runs
        self._machines = machines
        self._watchdog = watchdog
        self._events = events
        self.power = power

    # -- actions ---------------------------------------------------------------------------

    async def act(self, system_id: str, action: Action, request: RunRequest) -> Machine:
        if action is Action.ABORT:
            return await self.abort(system_id, request)
        return await self.start(system_id, KIND_OF_ACTION[action], request)

    async def start(self, system_id: str, kind: RunKind, request: RunRequest) -> Machine:
        action = Action.COMMISSION if kind is RunKind.COMMISSIONING else Action.TEST
        if request.tests is not None and len(request.tests) > MAX_TESTS:
            raise InvalidInput("tests", f"at most {MAX_TESTS} tests in one run")

        def decide(
            machine: Machine, scripts: list[StoredScript], inventory: dict[str, Any] | None
        ) -> RunStart:
            after = lifecycle.apply(machine.lifecycle, action)
            choice = choose_scripts(
                kind, scripts, request.tests, self._settings.tests, machine.status
            )
            data: dict[str, Any] = {
                "user": request.actor,
                "action": action.value,
                "from": machine.status.value,
                "to": after.status.value,
                "scripts": choice.names,
            }
            message = (
                f"{machine.hostname}: {machine.status.value} -> {after.status.value} "
                f"({action.value} by {request.actor}: {len(choice.names)} script(s))"
            )
            if request.comment:
                data["comment"] = request.comment
                message += f": {request.comment}"
            event = NewEvent("machine.status", message, machine=machine.system_id, data=data)
            return RunStart(after, kind, plan_run(choice, request.parameters), [event])

        started = await self._runs.start(system_id, decide, request.actor)
        self._watchdog.watch(started.run, started.machine.system_id)
        log.info(
            "run started system_id=%s run=%d kind=%s results=%d user=%s",
            system_id,
            started.run.id,
            kind.value,
            len(started.results),
            request.actor,
        )
        await self._network_boot(started.machine, request.actor)
        return started.machine

    async def abort(self, system_id: str, request: RunRequest) -> Machine:
        def decide(machine: Machine) -> tuple[lifecycle.LifecycleState, list[NewEvent]]:
            after = lifecycle.apply(machine.lifecycle, Action.ABORT)
            message = (
                f"{machine.hostname}: {machine.status.value} -> {after.status.value} "
                f"(abort by {request.actor})"
            )
            data: dict[str, Any] = {
                "user": request.actor,
                "action": "abort",
                "from": machine.status.value,
                "to": after.status.value,
            }
            if request.comment:
                data["comment"] = request.comment
                message += f": {request.comment}"
            return after, [
                NewEvent("machine.status", message, machine=machine.system_id, data=data)
            ]

        machine, runs = await self._runs.abort(system_id, decide, f"aborted by {request.actor}")
        for run in runs:
            self._watchdog.forget(run.id)
        log.info("run aborted system_id=%s runs=%d user=%s", system_id, len(runs), request.actor)
        return machine

    async def start_many(
        self,
        kind: RunKind,
        request: RunRequest,
        flt: MachineFilter | None = None,
        system_ids: Sequence[str] = (),
    ) -> list[BulkItem]:
        """Start `kind` on every machine the list or the filter names; each is accepted or
        refused with the reason, independently. The starts are submitted together, so the
        writer commits them in a few groups rather than one fsync each."""
        machines: list[Machine | str] = []
        for system_id in dict.fromkeys(system_ids):
            try:
                machines.append(await self._machines.get(system_id))
            except NotFound:
                machines.append(system_id)
        if flt is not None:
            seen = {m.system_id for m in machines if isinstance(m, Machine)}
            page = await self._machines.query(flt, BULK_LIMIT)
            machines += [m for m in page.items if m.system_id not in seen]

        async def one(target: Machine | str) -> BulkItem:
            if isinstance(target, str):
                return BulkItem(target, "", False, reason=f"no machine {target!r}")
            try:
                after = await self.start(target.system_id, kind, request)
            except (EdgeboxError, lifecycle.IllegalTransition) as exc:
                return BulkItem(
                    target.system_id, target.hostname, False, target.status.value, str(exc)
                )
            return BulkItem(after.system_id, after.hostname, True, after.status.value)

        return list(await asyncio.gather(*(one(m) for m in machines)))

    # -- reads -------------------------------------------------------------------------------

    async def results(self, system_id: str, run_id: int | None = None) -> RunView | None:
        """A run of the machine (default: its latest) and its results; None: no run yet."""
        machine = await self._machines.get(system_id)
        if run_id is None:
            run = await self._runs.latest_run(machine.id)
        else:
            run = await self._runs.run(run_id)
            if run is None or run.machine_id != machine.id:
                raise NotFound("run", f"{run_id} of machine {system_id}")
        if run is None:
            return None
        return RunView(run, await self._runs.results(run.id))

    async def runs(self, system_id: str, limit: int = 20) -> list[ScriptRun]:
        machine = await self._machines.get(system_id)
        return await self._runs.runs_of(machine.id, limit)

    async def result(self, system_id: str, result_id: int) -> ResultDetail:
        machine = await self._machines.get(system_id)
        result = await self._runs.result(result_id)
        if result is None or result.machine_id != machine.id:
            raise NotFound("result", f"{result_id} of machine {system_id}")
        run = await self._runs.run(result.run_id)
        assert run is not None
        return ResultDetail(result, run, await self._runs.output(result.id))

    async def summary(self) -> FleetSummary:
        return await self._runs.summary()

    # -- power -------------------------------------------------------------------------------

    async def _network_boot(self, machine: Machine, actor: str) -> None:
        """THE POWER HOOK: power the machine on with a one-time network boot, when it has a
        BMC. Without one (or without a power queue) a person or the lab boots it; the
        watchdog's event says so if nobody does. A refusal of the power queue is an event,
        never a failure of the run."""
        if self.power is None:
            return
        try:
            if not await self.power.has_bmc(machine.id):
                return
            # system=True: the machine is Commissioning/Testing now, where a person may not
            # drive power but edgebox, which owns the run, must.
            await self.power.request(machine.system_id, PowerOp.ON_NETWORK, actor, system=True)
        except (EdgeboxError, lifecycle.IllegalTransition) as exc:
            log.warning("network boot not queued system_id=%s reason=%s", machine.system_id, exc)
            await self._events.append(
                NewEvent(
                    "power.refused",
                    f"{machine.hostname}: power on with network boot could not be queued: "
                    f"{exc}; boot the machine by hand",
                    machine=machine.system_id,
                    level=EventLevel.WARNING,
                    data={"op": PowerOp.ON_NETWORK.value, "user": actor},
                )
            )
