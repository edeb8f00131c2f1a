"""Deploying machines: one or many (in rolling waves), the machine's part, the watchdog.

A deploy is two steps (docs/deploy-contract.md §1). `deploy()` checks the request and the
image (ready, raw, and its files re-hashed — cached — so a damaged file refuses the deploy
before any machine is touched), reserves the machine (a `queued` deployment; a Ready machine is
allocated to the caller), holds the image in the cache, and begins: Deploying, step `writing`,
and a power-on with a one-time network boot. The agent's `done` moves it to `booting` (the
boot script then answers "boot your disk") and the deployed OS's first user-data fetch or
phone-home makes it Deployed. A failure at any point makes it Failed deployment with the step
and the agent's words; its log is kept. `deploy_many` reserves every machine at once and lets
the rollout driver start them wave by wave.

How deploys and releases end (the machine's reports, the power hook, `ended`) is in
`deploy_outcomes.py`. The watchdog here fails what stays silent past `deploy.timeout`, releases
included (their service shares the tracker and the outcomes).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from edgebox.domain.deploy_settings import DeploySettings
from edgebox.domain.deployment import (
    MAX_ERROR,
    AgentOutcome,
    DeployInputError,
    DeployKind,
    Deployment,
    DeployRequest,
    DeployState,
    DeployStep,
    check_request,
)
from edgebox.domain.errors import Conflict, EdgeboxError, InvalidInput
from edgebox.domain.lifecycle import Action, IllegalTransition, Status
from edgebox.domain.models import Machine, MachineFilter
from edgebox.domain.power import PowerOp
from edgebox.services.clock import Clock
from edgebox.services.deploy_outcomes import DeployOutcomes, DeployPower
from edgebox.services.deploy_tracker import DeployTracker
from edgebox.services.event_service import EventService
from edgebox.services.image_checks import ImageFileChecks
from edgebox.services.image_service import ImageService
from edgebox.services.machine_service import validated_hostname
from edgebox.services.rollout_driver import RolloutDriver
from edgebox.services.status_events import move
from edgebox.storage.deploy_store import Change, Changed, DeployStore, Reservation, Reserved
from edgebox.storage.image_store import ImageRecord, ImageState
from edgebox.storage.machine_store import MachineStore

log = logging.getLogger(__name__)

BULK_LIMIT: Final = 10_000
TICK: Final = 5.0
Refusals = (EdgeboxError, IllegalTransition)


class ImageRefusedForDeploy(Conflict):
    """The image cannot be deployed (not ready, not raw, a damaged file)."""


@dataclass(frozen=True, slots=True)
class BulkItem:
    system_id: str
    hostname: str
    accepted: bool
    wave: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Bulk:
    rollout_id: int | None
    items: list[BulkItem]


def bulk_items(reserved: Sequence[Reserved]) -> list[BulkItem]:
    return [
        BulkItem(r.system_id, r.hostname, True, r.deployment.wave)
        if r.deployment is not None
        else BulkItem(r.system_id, r.hostname, False, reason=str(r.refusal))
        for r in reserved
    ]


def cancel(machine: Machine, d: Deployment, state: DeployState, reason: str, now: float) -> Change:
    """End a deployment that never ran; a machine its request allocated is freed again."""
    fields = {"state": state, "error": reason[:MAX_ERROR], "finished_at": now}
    if d.allocated_here and machine.status is Status.ALLOCATED and machine.owner == d.requested_by:
        after, event = move(machine, Action.RELEASE, "edgebox", f"{d.kind.value} not started")
        return Change(fields, lifecycle=after, owner=None, events=[event])
    return Change(fields)


class DeployService:
    def __init__(
        self,
        settings: DeploySettings,
        *,
        store: DeployStore,
        machines: MachineStore,
        images: ImageService,
        events: EventService,
        clock: Clock,
        power: DeployPower | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._machines = machines
        self._images = images
        self._checks = ImageFileChecks(images.files)
        self._clock = clock
        self.tracker = DeployTracker(clock)
        self.rollouts = RolloutDriver(store, begin=self._begin_many, skip=self._skip_many)
        self.outcomes = DeployOutcomes(
            store=store, images=images, events=events, clock=clock, tracker=self.tracker,
            power=power, poke=self.rollouts.poke,
        )  # fmt: skip

    @property
    def checks(self) -> ImageFileChecks:
        return self._checks

    async def load(self) -> int:
        """Track every deploy and release a previous process left running; return how many."""
        running = [
            d for d in await self._store.open_deployments() if d.state is DeployState.RUNNING
        ]
        for deployment in running:
            self.tracker.track(deployment, resumed=True)
        if running:
            log.info("deploys: resumed watching %d deploy(s) and release(s)", len(running))
        return len(running)

    def boots_locally(self, machine: Machine) -> bool:
        return self.tracker.boots_locally(machine)

    # -- requests ------------------------------------------------------------------------

    async def ready_image(self, ref: str) -> ImageRecord:
        """The image to deploy: ready, a raw disk, and its files intact on disk now."""
        image = await self._images.resolve(ref)
        if image.state is not ImageState.READY:
            why = f" ({image.error})" if image.error else ""
            raise ImageRefusedForDeploy(f"image {image.name} is {image.state.value}{why}")
        if image.manifest.kind != "raw":
            raise ImageRefusedForDeploy(
                f"image {image.name} is a {image.manifest.kind} image; only raw disk images "
                "can be deployed"
            )
        problems = await self._checks.problems(image)
        if problems:
            try:
                await self._images.verify(image.id)  # marks it failed: never offered again
            except EdgeboxError as exc:
                log.warning("image %s: verify after a failed check: %s", image.id, exc)
            raise ImageRefusedForDeploy(
                f"image {image.name} is damaged in the cache: {'; '.join(problems)}; no "
                "machine was touched (import the image again to repair it)"
            )
        return image

    async def deploy(self, system_id: str, request: DeployRequest) -> Machine:
        request = _checked(request)
        image = await self.ready_image(request.image)
        _, [item] = await self._store.reserve([system_id], self._reservation(request, image))
        if item.refusal is not None:
            raise item.refusal
        assert item.deployment is not None
        problem = await self._hold(item.deployment)
        if problem:
            raise Conflict(problem)
        changed = await self._begin(item.deployment.id)
        if changed is None or changed.deployment.state is not DeployState.RUNNING:
            raise Conflict(changed.deployment.error if changed else "the deploy did not start")
        return changed.machine

    async def deploy_many(
        self,
        request: DeployRequest,
        flt: MachineFilter | None = None,
        system_ids: Sequence[str] = (),
        *,
        wave: int = 0,
        max_failures: int = 0,
    ) -> Bulk:
        """Reserve every machine the list or filter names (each accepted or refused with the
        reason), then deploy them in waves of `wave` (0: all at once), stopping once
        `max_failures` have failed (0: never)."""
        request = _checked(request)
        if wave < 0:
            raise InvalidInput("wave", "expected a wave size of 0 (all at once) or more")
        if max_failures < 0:
            raise InvalidInput("max_failures", "expected 0 (never stop) or more")
        ids = await self.selected(flt, system_ids)
        if request.hostname and len(ids) > 1:
            raise InvalidInput("hostname", "a host name is for one machine; deploy it alone")
        image = await self.ready_image(request.image)
        rollout_id, reserved = await self._store.reserve(
            ids,
            self._reservation(request, image),
            (DeployKind.DEPLOY, wave, max_failures, request.actor),
        )
        accepted = [r.deployment for r in reserved if r.deployment is not None]
        await asyncio.gather(*(self._hold(d) for d in accepted))
        assert rollout_id is not None
        log.info(
            "deploy rollout=%d image=%s accepted=%d refused=%d wave=%d max_failures=%d user=%s",
            rollout_id, image.name, len(accepted), len(reserved) - len(accepted), wave,
            max_failures, request.actor,
        )  # fmt: skip
        await self.rollouts.advance(rollout_id)
        return Bulk(rollout_id, bulk_items(reserved))

    async def selected(self, flt: MachineFilter | None, system_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(system_ids))
        if flt is not None:
            seen = set(ids)
            page = await self._machines.query(flt, BULK_LIMIT)
            ids += [m.system_id for m in page.items if m.system_id not in seen]
        return ids

    def _reservation(self, request: DeployRequest, image: ImageRecord) -> Any:
        disk = image.manifest.disk

        def decide(machine: Machine, open_: list[Deployment]) -> Reservation:
            if open_:
                raise Conflict(
                    f"machine {machine.hostname} already has a {open_[0].kind.value} "
                    f"{open_[0].state.value} ({open_[0].id})"
                )
            events, after, allocated = [], None, False
            if machine.status is Status.READY:
                after, event = move(machine, Action.ALLOCATE, request.actor, "to deploy it")
                events.append(event)
                allocated = True
            elif machine.status is Status.ALLOCATED:
                if machine.owner not in (None, request.actor):
                    raise Conflict(f"machine {machine.hostname} is allocated to {machine.owner}")
            else:
                move(machine, Action.DEPLOY, request.actor)  # raises: the lifecycle says why
            hostname = validated_hostname(request.hostname) if request.hostname else None
            boot = next((i.mac for i in machine.interfaces if i.boot), "")
            row = Deployment(
                id=0, machine_id=machine.id, system_id=machine.system_id,
                kind=DeployKind.DEPLOY, state=DeployState.QUEUED, step=DeployStep.NONE,
                requested_by=request.actor, created_at=0.0, allocated_here=allocated,
                image_id=image.id, image_name=image.name, image_sha256=disk.sha256,
                image_size=disk.size, compression=image.manifest.compression,
                user_data=request.user_data, ssh_keys=request.ssh_keys,
                hostname=hostname or machine.hostname, disk=request.disk,
                boot_mac=boot or (machine.interfaces[0].mac if machine.interfaces else ""),
                comment=request.comment, seed_secret=secrets.token_urlsafe(24),
            )  # fmt: skip
            change = Change(lifecycle=after, owner=request.actor, hostname=hostname, events=events)
            return Reservation(row, change)

        return decide

    async def _hold(self, d: Deployment) -> str:
        """Hold the image for `d`; on failure fail `d` and return why (empty: held)."""
        try:
            await self._images.acquire(d.image_id, d.holder)
        except EdgeboxError as exc:
            reason = f"image {d.image_name} cannot be held for the deploy: {exc}"
            now = self._clock.now()
            changed = await self._store.change(
                d.id,
                lambda m, cur: (
                    cancel(m, cur, DeployState.FAILED, reason, now)
                    if cur.state is DeployState.QUEUED
                    else None
                ),
            )
            if changed is not None:
                await self.outcomes.ended([changed.deployment])
            return reason
        return ""

    async def _begin_many(self, deployment_ids: Sequence[int]) -> None:
        await asyncio.gather(*(self._begin(i) for i in deployment_ids))

    async def _begin(self, deployment_id: int) -> Changed | None:
        now = self._clock.now()

        def decide(machine: Machine, d: Deployment) -> Change | None:
            if d.state is not DeployState.QUEUED:
                return None
            try:
                if machine.owner not in (None, d.requested_by):
                    raise Conflict(f"it is allocated to {machine.owner} now")
                after, event = move(machine, Action.DEPLOY, d.requested_by, f"image {d.image_name}")
            except Refusals as exc:
                return cancel(machine, d, DeployState.SKIPPED, f"not started: {exc}", now)
            fields = {"state": DeployState.RUNNING, "step": DeployStep.WRITING, "started_at": now}
            return Change(fields, lifecycle=after, owner=d.requested_by, events=[event])

        changed = await self._store.change(deployment_id, decide)
        if changed is None:
            return None
        if changed.deployment.state is DeployState.RUNNING:
            self.tracker.track(changed.deployment)
            await self.outcomes.drive_power(changed.machine, PowerOp.ON_NETWORK, changed.deployment)
        else:
            await self.outcomes.ended([changed.deployment])
        return changed

    async def _skip_many(self, deployment_ids: Sequence[int], reason: str) -> None:
        now = self._clock.now()
        changed = await self._store.change_many(
            deployment_ids,
            lambda m, d: (
                cancel(m, d, DeployState.SKIPPED, reason, now)
                if d.state is DeployState.QUEUED
                else None
            ),
        )
        await self.outcomes.ended([c.deployment for c in changed])

    async def abort(self, system_id: str, actor: str, comment: str = "") -> Machine:
        """Stop a deploy in flight: Deploying -> Allocated, and power the machine off."""
        d = await self._store.latest(system_id, DeployKind.DEPLOY)
        now = self._clock.now()

        def decide(machine: Machine, cur: Deployment) -> Change | None:
            after, event = move(machine, Action.ABORT, actor, comment)
            fields = {
                "state": DeployState.ABORTED,
                "error": f"aborted by {actor}",
                "finished_at": now,
            }
            return Change(fields, lifecycle=after, events=[event])

        if d is None or d.state is not DeployState.RUNNING:
            raise Conflict(f"machine {system_id} has no deploy in flight to abort")
        changed = await self._store.change(d.id, decide)
        assert changed is not None
        await self.outcomes.ended([changed.deployment])
        await self.outcomes.drive_power(changed.machine, PowerOp.OFF, changed.deployment)
        return changed.machine

    # -- the watchdog -------------------------------------------------------------------

    async def check(self) -> int:
        """Fail what has been silent past the timeout now; return how many were failed."""
        failed = 0
        for active, reason in self.tracker.overdue(self._clock.monotonic(), self._settings.timeout):
            d = active.deployment
            self.tracker.forget(d.machine_id, d.id)
            log.warning("deploy watchdog system_id=%s deployment=%d: %s", d.system_id, d.id, reason)
            if await self.outcomes.failed(
                d, AgentOutcome(False, d.step.value, reason), actor="watchdog"
            ):
                failed += 1
            else:  # it ended unseen (its machine was deleted): still release what it held
                await self.outcomes.ended([d])
        return failed

    async def run(self) -> None:
        """The rollout driver and the watchdog (every TICK s), until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.rollouts.run(), name="rollouts")
            while True:
                await asyncio.sleep(TICK)
                try:
                    await self.check()
                except Exception:
                    log.exception("deploy watchdog check failed; trying again in %.0f s", TICK)


def _checked(request: DeployRequest) -> DeployRequest:
    try:
        return check_request(request)
    except DeployInputError as exc:
        raise InvalidInput(exc.field, exc.detail) from None
