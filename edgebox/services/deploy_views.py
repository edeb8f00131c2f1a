"""What people read about deploys: a machine's latest deployment and a rollout's machines.

Rows come from the database; the progress of what is in flight comes from the tracker (the
agent's reports are kept in memory, see `deploy_tracker.py`), so a view is as fresh as the
agent's last call without a write per report.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebox.domain.deployment import Deployment
from edgebox.domain.errors import NotFound
from edgebox.domain.lifecycle import Status
from edgebox.services.deploy_tracker import DeployTracker
from edgebox.storage.deploy_sql import Rollout
from edgebox.storage.deploy_store import DeployStore, RolloutItem
from edgebox.storage.machine_store import MachineStore

LOG_TAIL = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeploymentView:
    deployment: Deployment
    status: Status  # the machine's, now
    log: bytes  # the last LOG_TAIL bytes kept
    log_size: int  # bytes the agent sent


@dataclass(frozen=True, slots=True)
class RolloutView:
    rollout: Rollout
    items: list[RolloutItem]


class DeployViews:
    def __init__(self, store: DeployStore, machines: MachineStore, tracker: DeployTracker) -> None:
        self._store = store
        self._machines = machines
        self._tracker = tracker

    async def deployment(self, system_id: str, log_tail: int = LOG_TAIL) -> DeploymentView:
        machine = await self._machines.get(system_id)
        d = await self._store.latest(system_id)
        if d is None:
            raise NotFound("deployment of machine", system_id)
        kept = await self._store.log(d.id)
        data, size = kept if kept is not None else (b"", 0)
        tail = data[-log_tail:] if log_tail > 0 else b""
        return DeploymentView(self._tracker.with_progress(d), machine.status, tail, size)

    async def rollout(self, rollout_id: int) -> RolloutView:
        rollout = await self._store.rollout(rollout_id)
        if rollout is None:
            raise NotFound("rollout", str(rollout_id))
        items = [
            RolloutItem(self._tracker.with_progress(i.deployment), i.hostname, i.status)
            for i in await self._store.rollout_items(rollout_id)
        ]
        return RolloutView(rollout, items)
