"""Releasing machines: free them, power them off or erase their disks, and make them Ready.

- Only the machine's owner (the user it is allocated to) or an admin may release it; anyone
  else is refused with the owner's name (`domain.ownership`).
- An Allocated machine is just freed (Ready, no owner); a deploy queued for it is cancelled.
- A Deployed (or Failed deployment / Failed releasing / Failed disk erasing) machine goes
  Releasing. With erase `none` it is powered off through the power queue and goes Ready when
  the queue says it is off (Failed releasing if that fails; straight to Ready without a BMC,
  with an event asking a person to power it off). With `quick`, `full` or `secure` it goes
  Disk erasing: network boot into the ephemeral environment with `edgebox.purpose=erase`, the
  agent erases as asked (docs/deploy-contract.md §2), reports, and powers off -> Ready, or
  Failed disk erasing with the disk and the agent's words.

The same tracker, endings and watchdog as deploys (`DeployService`): a release is a deployment
row of kind `release`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from edgebox.domain.deployment import (
    AgentOutcome,
    DeployKind,
    Deployment,
    DeployState,
    DeployStep,
    EraseMode,
    ReleaseRequest,
)
from edgebox.domain.errors import Conflict, EdgeboxError, NotFound
from edgebox.domain.lifecycle import Action, IllegalTransition, Status
from edgebox.domain.models import EventLevel, Machine, MachineFilter
from edgebox.domain.ownership import check_owner
from edgebox.domain.power import PowerOp, PowerOpState
from edgebox.services.clock import Clock
from edgebox.services.deploy_service import Bulk, BulkItem, DeployService
from edgebox.services.status_events import move
from edgebox.storage.deploy_store import Change, DeployStore, Released, ReleasePlan
from edgebox.storage.machine_store import MachineStore

log = logging.getLogger(__name__)

POLL_S: Final = 1.0
Refusals = (EdgeboxError, IllegalTransition)


class ReleaseService:
    def __init__(
        self,
        deploys: DeployService,
        *,
        store: DeployStore,
        machines: MachineStore,
        clock: Clock,
        poll_s: float = POLL_S,
    ) -> None:
        self._deploys = deploys
        self._store = store
        self._machines = machines
        self._clock = clock
        self._poll_s = poll_s
        self._power_offs: dict[int, int] = {}  # power op id -> release deployment id
        self._wake = asyncio.Event()

    async def load(self) -> None:
        """Wait again for the power-offs that a previous process was waiting for."""
        for d in await self._store.open_deployments():
            if d.kind is DeployKind.RELEASE and d.step is DeployStep.POWER_OFF and d.power_op_id:
                self._power_offs[d.power_op_id] = d.id
        self._wake.set()

    # -- requests ------------------------------------------------------------------------

    async def release(
        self, system_id: str, request: ReleaseRequest, rollout_id: int | None = None
    ) -> Machine:
        machine = await self._machines.get(system_id)
        power = self._deploys.outcomes.power
        has_bmc = power is not None and await power.has_bmc(machine.id)
        released = await self._store.start_release(
            system_id, self._plan(request, has_bmc), rollout_id
        )
        await self._after(released)
        return released.machine

    async def release_many(
        self, request: ReleaseRequest, flt: MachineFilter | None = None,
        system_ids: Sequence[str] = (),
    ) -> Bulk:  # fmt: skip
        """Release every machine the list or filter names, each accepted or refused with the
        reason; the releases form one rollout (all at once) for following them."""
        ids = await self._deploys.selected(flt, system_ids)
        rollout_id = await self._store.new_rollout(DeployKind.RELEASE, request.actor)

        async def one(system_id: str) -> BulkItem:
            try:
                machine = await self.release(system_id, request, rollout_id)
            except NotFound:
                return BulkItem(system_id, "", False, reason=f"no machine {system_id!r}")
            except Refusals as exc:
                return BulkItem(system_id, "", False, reason=str(exc))
            return BulkItem(system_id, machine.hostname, True)

        async with self._deploys.rollouts.lock(rollout_id):
            items = list(await asyncio.gather(*(one(i) for i in ids)))
        self._deploys.rollouts.poke(rollout_id)
        return Bulk(rollout_id, items)

    def _plan(self, request: ReleaseRequest, has_bmc: bool) -> Any:
        now = self._clock.now()
        actor, erase = request.actor, request.erase

        def decide(machine: Machine, open_: list[Deployment]) -> ReleasePlan:
            check_owner(machine, actor, admin=request.admin, doing="release")
            queued = {d.id: d for d in open_ if d.state is DeployState.QUEUED}
            after, event = move(machine, Action.RELEASE, actor, request.comment)
            events = [event]
            row = Deployment(
                id=0, machine_id=machine.id, system_id=machine.system_id,
                kind=DeployKind.RELEASE, state=DeployState.RUNNING, step=DeployStep.NONE,
                requested_by=actor, created_at=now, erase=erase, comment=request.comment,
                started_at=now,
            )  # fmt: skip
            cancel = {
                d.id: {"state": DeployState.ABORTED, "error": f"released by {actor}",
                       "finished_at": now}
                for d in open_
            }  # fmt: skip
            owner: str | None = machine.owner
            if after.status is Status.READY:  # an Allocated machine: just freed
                done = {"state": DeployState.SUCCEEDED, "finished_at": now}
                return ReleasePlan(
                    Change(lifecycle=after, owner=None, events=events),
                    _with(row, erase=EraseMode.NONE, **done), cancel,
                )  # fmt: skip
            for d in open_:
                if d.id not in queued:  # a deploy still running: the lifecycle refused above
                    raise Conflict(f"machine {machine.hostname} has a {d.kind.value} running")
            if erase is not EraseMode.NONE:
                after, event = move(machine, Action.ERASE_STARTED, "edgebox", f"erase {erase}",
                                    state=after)  # fmt: skip
                events.append(event)
                row = _with(row, step=DeployStep.ERASING)
            elif has_bmc:
                row = _with(row, step=DeployStep.POWER_OFF)
            else:
                note = "no BMC: power it off by hand if it is on"
                after, event = move(machine, Action.RELEASE_SUCCEEDED, "edgebox", note,
                                    state=after, level=EventLevel.WARNING)  # fmt: skip
                events.append(event)
                row = _with(row, state=DeployState.SUCCEEDED, finished_at=now)
                owner = None
            return ReleasePlan(Change(lifecycle=after, owner=owner, events=events), row, cancel)

        return decide

    async def _after(self, released: Released) -> None:
        await self._deploys.outcomes.ended(released.cancelled)
        d = released.deployment
        if d is None:
            return
        if d.state is not DeployState.RUNNING:
            await self._deploys.outcomes.ended([d])
            return
        self._deploys.tracker.track(d)
        if d.step is DeployStep.ERASING:
            await self._deploys.outcomes.drive_power(released.machine, PowerOp.ON_NETWORK, d)
            return
        op = await self._deploys.outcomes.drive_power(released.machine, PowerOp.OFF, d)
        if op is not None:
            changed = await self._store.change(d.id, lambda m, cur: Change({"power_op_id": op.id}))
            if changed is not None:
                self._deploys.tracker.update(changed.deployment)
            self._power_offs[op.id] = d.id
            self._wake.set()

    async def abort(self, system_id: str, actor: str, comment: str = "") -> Machine:
        """Stop an erase in flight: Disk erasing -> Failed disk erasing, power off."""
        d = await self._store.latest(system_id, DeployKind.RELEASE)
        if d is None or d.state is not DeployState.RUNNING:
            raise Conflict(f"machine {system_id} has no erase in flight to abort")
        now = self._clock.now()

        def decide(machine: Machine, cur: Deployment) -> Change:
            after, event = move(machine, Action.ABORT, actor, comment)
            fields = {
                "state": DeployState.ABORTED,
                "error": f"aborted by {actor}",
                "finished_at": now,
            }
            return Change(fields, lifecycle=after, events=[event])

        changed = await self._store.change(d.id, decide)
        assert changed is not None
        await self._deploys.outcomes.ended([changed.deployment])
        await self._deploys.outcomes.drive_power(changed.machine, PowerOp.OFF, changed.deployment)
        return changed.machine

    # -- the machine's part and the power queue -----------------------------------------

    async def erased(self, d: Deployment, outcome: AgentOutcome) -> None:
        """The agent's erase/done: Ready (no owner), or Failed disk erasing."""
        if not outcome.ok:
            await self._deploys.outcomes.failed(d, outcome)
            return
        await self._succeed(d, outcome.result, Action.ERASE_SUCCEEDED, "agent",
                            "disks erased: " + _erased(outcome.result))  # fmt: skip

    async def _succeed(
        self, d: Deployment, result: Any, action: Action, actor: str, note: str
    ) -> None:
        now = self._clock.now()

        def decide(machine: Machine, cur: Deployment) -> Change | None:
            if cur.state is not DeployState.RUNNING:
                return None
            fields = {"state": DeployState.SUCCEEDED, "finished_at": now, "result": result or {}}
            if machine.status not in (Status.RELEASING, Status.DISK_ERASING):
                return Change(fields)
            after, event = move(machine, action, actor, note)
            return Change(fields, lifecycle=after, owner=None, events=[event])

        changed = await self._store.change(d.id, decide)
        if changed is not None:
            await self._deploys.outcomes.ended([changed.deployment])

    async def check_power_offs(self) -> None:
        """Look at the power-offs waited for: done -> Ready, failed -> Failed releasing."""
        power = self._deploys.outcomes.power
        if not self._power_offs or power is None:
            return
        for op in await power.ops(list(self._power_offs)):
            if op.state not in (PowerOpState.DONE, PowerOpState.FAILED):
                continue
            deployment_id = self._power_offs.pop(op.id)
            d = await self._store.get(deployment_id)
            if d is None or d.state is not DeployState.RUNNING:
                continue
            if op.state is PowerOpState.DONE:
                await self._succeed(d, {}, Action.RELEASE_SUCCEEDED, "edgebox", "powered off")
            else:
                failure = AgentOutcome(False, "power-off", f"power off failed: {op.error}")
                await self._deploys.outcomes.failed(d, failure, actor="edgebox")

    async def run(self) -> None:
        """Check the awaited power-offs every `poll_s` while there are any, until cancelled."""
        await self.load()
        while True:
            try:
                await self.check_power_offs()
            except Exception:
                log.exception("release: checking power-offs failed; trying again")
            timeout = self._poll_s if self._power_offs else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()


def _with(row: Deployment, **fields: Any) -> Deployment:
    return replace(row, **fields)


def _erased(result: Any) -> str:
    disks = (result or {}).get("disks") or {}
    return ", ".join(f"{disk} ({how})" for disk, how in sorted(disks.items())) or "none found"
