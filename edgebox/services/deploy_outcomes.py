"""How deploys and releases end: the machine's reports, the endings, and the power hook.

The agent's `done` (`written` or `failed`), the deployed OS's first call (`reached`), the
watchdog's verdict (`failed`) and a new step of the agent (`progressed`) each re-read the
deployment and its machine in one write transaction and decide there, so a late or repeated
report never undoes a newer state. Every ending goes through `ended`: the tracker forgets the
deployment, its image hold is released, and its rollout is poked to move on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from edgebox.domain.deployment import (
    AgentOutcome,
    DeployKind,
    Deployment,
    DeployState,
    DeployStep,
)
from edgebox.domain.errors import EdgeboxError
from edgebox.domain.lifecycle import FAILURE_OF, Action, IllegalTransition, Status
from edgebox.domain.models import EventLevel, Machine, NewEvent
from edgebox.domain.power import PowerOp
from edgebox.services.clock import Clock
from edgebox.services.deploy_tracker import DeployTracker
from edgebox.services.event_service import EventService
from edgebox.services.image_service import ImageService
from edgebox.services.status_events import move
from edgebox.storage.deploy_store import Change, DeployStore

log = logging.getLogger(__name__)

Refusals = (EdgeboxError, IllegalTransition)
BUSY_OF: Final = {
    DeployKind.DEPLOY: frozenset({Status.DEPLOYING}),
    DeployKind.RELEASE: frozenset({Status.RELEASING, Status.DISK_ERASING}),
}


class DeployPower(Protocol):
    """What deploys and releases need of the power queue (`PowerService`)."""

    async def has_bmc(self, machine_id: int) -> bool: ...

    async def bmc(self, system_id: str) -> Any: ...

    async def request(
        self, system_id: str, op: PowerOp, actor: str, *, system: bool = False
    ) -> Any: ...

    async def ops(self, op_ids: Sequence[int]) -> list[Any]: ...


class DeployOutcomes:
    def __init__(
        self,
        *,
        store: DeployStore,
        images: ImageService,
        events: EventService,
        clock: Clock,
        tracker: DeployTracker,
        power: DeployPower | None,
        poke: Callable[[int], None],
    ) -> None:
        self._store = store
        self._images = images
        self._events = events
        self._clock = clock
        self.tracker = tracker
        self.power = power
        self._poke = poke

    async def written(self, d: Deployment, outcome: AgentOutcome) -> str:
        """The agent wrote and verified the image: boot it. The answer for the agent."""
        now = self._clock.now()
        progress = self.tracker.with_progress(d)

        def decide(machine: Machine, cur: Deployment) -> Change | None:
            if cur.state is not DeployState.RUNNING or cur.step is not DeployStep.WRITING:
                return None
            if machine.status is not Status.DEPLOYING:
                reason = f"the machine is {machine.status.value} now"
                return Change({"state": DeployState.ABORTED, "error": reason, "finished_at": now})
            result = outcome.result or {}
            event = NewEvent(
                "deploy.written",
                f"{machine.hostname}: image {cur.image_name} written to {result.get('disk')} "
                "and verified; booting it",
                machine=machine.system_id,
                data={"image": cur.image_id, "disk": result.get("disk"), "deployment": cur.id},
            )
            fields = {
                "step": DeployStep.BOOTING, "disk": result.get("disk", ""), "result": result,
                "agent_step": progress.agent_step, "done": progress.done, "total": progress.total,
            }  # fmt: skip
            return Change(fields, events=[event])

        changed = await self._store.change(d.id, decide)
        if changed is None:
            active = self.tracker.of_machine(d.machine_id)
            booting = active is not None and active.deployment.step is DeployStep.BOOTING
            return "reboot" if booting else "poweroff"
        if changed.deployment.state is not DeployState.RUNNING:
            await self.ended([changed.deployment])
            return "poweroff"
        self.tracker.update(changed.deployment)
        await self.drive_power(changed.machine, PowerOp.BOOT_DISK, changed.deployment)
        return "reboot"

    async def failed(self, d: Deployment, outcome: AgentOutcome, actor: str = "agent") -> bool:
        """Fail `d` (and its machine, if it is still in the busy status); False: `d` had
        ended already, or is gone with its machine."""
        now = self._clock.now()
        progress = self.tracker.with_progress(d)

        def decide(machine: Machine, cur: Deployment) -> Change | None:
            if cur.state is not DeployState.RUNNING:
                return None
            step = outcome.step or progress.agent_step or cur.step.value
            fields = {
                "state": DeployState.FAILED, "error": outcome.error, "failed_step": step,
                "finished_at": now, "agent_step": progress.agent_step, "done": progress.done,
                "total": progress.total,
            }  # fmt: skip
            action = FAILURE_OF.get(machine.status)
            if machine.status not in BUSY_OF[cur.kind] or action is None:
                return Change(fields)
            note = f"step {step}: {outcome.error}"
            after, event = move(machine, action, actor, note, level=EventLevel.ERROR)
            return Change(fields, lifecycle=after, events=[event])

        changed = await self._store.change(d.id, decide)
        if changed is None:
            return False
        await self.ended([changed.deployment])
        return True

    async def reached(self, system_id: str, how: str) -> bool:
        """The deployed OS called (its user-data fetch, or a phone-home): Deployed."""
        active = self.tracker.of_system(system_id)
        if active is None or active.deployment.step is not DeployStep.BOOTING:
            return False
        now = self._clock.now()

        def decide(machine: Machine, cur: Deployment) -> Change | None:
            if cur.state is not DeployState.RUNNING or cur.step is not DeployStep.BOOTING:
                return None
            if machine.status is not Status.DEPLOYING:
                return None
            note = f"the deployed OS {how}; image {cur.image_name} on {cur.disk}"
            after, event = move(machine, Action.DEPLOY_SUCCEEDED, "cloud-init", note)
            return Change(
                {"state": DeployState.SUCCEEDED, "finished_at": now},
                lifecycle=after,
                events=[event],
            )

        changed = await self._store.change(active.deployment.id, decide)
        if changed is None:
            return False
        await self.ended([changed.deployment])
        return True

    async def progressed(self, d: Deployment, step: str, done: int, total: int) -> None:
        """A new step of the agent is kept (a few writes per deploy, not one per report)."""

        def decide(machine: Machine, cur: Deployment) -> Change | None:
            if cur.state is not DeployState.RUNNING:
                return None
            return Change({"agent_step": step, "done": done, "total": total})

        await self._store.change(d.id, decide)

    async def ended(self, deployments: Sequence[Deployment]) -> None:
        """After deployments ended (any way): forget them, release their image holds, and
        let their rollouts move on."""
        for d in deployments:
            self.tracker.forget(d.machine_id, d.id)
        holds = [d.holder for d in deployments if d.kind is DeployKind.DEPLOY]
        for result in await asyncio.gather(
            *(self._images.release(h) for h in holds), return_exceptions=True
        ):
            if isinstance(result, BaseException):
                log.error("image hold not released: %s", result)
        for rollout_id in {d.rollout_id for d in deployments if d.rollout_id is not None}:
            self._poke(rollout_id)

    async def drive_power(self, machine: Machine, op: PowerOp, d: Deployment) -> Any:
        """THE POWER HOOK of deploys and releases: queue `op` as edgebox when the machine has
        a BMC (without one a person boots it; the watchdog says so if nobody does). Setting
        the boot device is skipped for the manual driver: the boot script's local-boot answer
        covers a network-first machine. A refusal of the queue is an event, never a failure."""
        if self.power is None:
            return None
        try:
            if op is PowerOp.BOOT_DISK:
                bmc = await self.power.bmc(machine.system_id)
                if bmc is None or getattr(bmc, "driver", "") == "manual":
                    return None
            elif not await self.power.has_bmc(machine.id):
                return None
            return await self.power.request(machine.system_id, op, d.requested_by, system=True)
        except Refusals as exc:
            log.warning("power %s not queued system_id=%s reason=%s", op, machine.system_id, exc)
            await self._events.append(
                NewEvent(
                    "power.refused",
                    f"{machine.hostname}: {op.value} for the {d.kind.value} could not be queued: "
                    f"{exc}; do it by hand",
                    machine=machine.system_id,
                    level=EventLevel.WARNING,
                    data={"op": op.value, "user": d.requested_by, "deployment": d.id},
                )
            )
            return None
