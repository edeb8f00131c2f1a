"""The deploys and releases in flight, in memory: what the agent's calls and the watchdog read.

Every running deployment is here, by machine and by system id, with its agent's last progress
report and its last sign of life. The agent's calls (a few per second across 300 machines)
and the cloud-init fetches find their deployment here without a database read, progress
reports are never written one by one, and the watchdog checks silence without a query.

The database stays the authority: the tracker is filled from it at start (`DeployService.load`)
and every decision that changes a deployment re-reads the row in its write transaction, so a
tracker entry that is out of date can delay a verdict but never make a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgebox.domain.deployment import DeployKind, Deployment, DeployStep, Progress
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine
from edgebox.services.clock import Clock


@dataclass(slots=True)
class Active:
    deployment: Deployment
    since: float  # monotonic: when this step began (or this process started watching)
    last_seen: float | None = None  # monotonic: the machine's last sign of life
    progress: Progress | None = None
    resumed: bool = False  # watched again after a restart of edgebox


class DeployTracker:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_machine: dict[int, Active] = {}
        self._by_system: dict[str, Active] = {}

    def track(self, deployment: Deployment, *, resumed: bool = False) -> Active:
        progress = None
        if deployment.agent_step:
            progress = Progress(deployment.agent_step, deployment.done, deployment.total)
        active = Active(deployment, self._clock.monotonic(), progress=progress, resumed=resumed)
        self.forget(deployment.machine_id)
        self._by_machine[deployment.machine_id] = active
        self._by_system[deployment.system_id] = active
        return active

    def update(self, deployment: Deployment) -> None:
        """A new version of a tracked deployment; a new step restarts its clock."""
        active = self._by_machine.get(deployment.machine_id)
        if active is None or active.deployment.id != deployment.id:
            return
        if deployment.step != active.deployment.step:
            active.since, active.last_seen, active.resumed = self._clock.monotonic(), None, False
        active.deployment = deployment

    def forget(self, machine_id: int, deployment_id: int | None = None) -> None:
        active = self._by_machine.get(machine_id)
        if active is None or (deployment_id is not None and active.deployment.id != deployment_id):
            return
        del self._by_machine[machine_id]
        if self._by_system.get(active.deployment.system_id) is active:
            del self._by_system[active.deployment.system_id]

    def of_machine(self, machine_id: int) -> Active | None:
        return self._by_machine.get(machine_id)

    def of_system(self, system_id: str) -> Active | None:
        return self._by_system.get(system_id)

    def touch(self, machine_id: int) -> None:
        active = self._by_machine.get(machine_id)
        if active is not None:
            active.last_seen = self._clock.monotonic()

    def report(self, machine_id: int, progress: Progress) -> Progress | None:
        """Record the agent's progress; return the previous report."""
        active = self._by_machine.get(machine_id)
        if active is None:
            return None
        before, active.progress = active.progress, progress
        active.last_seen = self._clock.monotonic()
        return before

    def with_progress(self, deployment: Deployment) -> Deployment:
        """`deployment` with the live progress of its agent, when it is in flight here."""
        active = self._by_machine.get(deployment.machine_id)
        if active is None or active.deployment.id != deployment.id or active.progress is None:
            return deployment
        p = active.progress
        return replace(deployment, agent_step=p.step, done=p.done, total=p.total)

    def boots_locally(self, machine: Machine) -> bool:
        """A Deploying machine whose image is written boots its disk, not the network."""
        if machine.status is not Status.DEPLOYING:
            return False
        active = self._by_machine.get(machine.id)
        return active is not None and active.deployment.step is DeployStep.BOOTING

    @property
    def count(self) -> int:
        return len(self._by_machine)

    def overdue(self, now: float, limit: float) -> list[tuple[Active, str]]:
        """The deployments whose machine has been silent `limit` seconds, with the reason."""
        found = []
        for active in self._by_machine.values():
            quiet = now - (active.last_seen if active.last_seen is not None else active.since)
            if quiet >= limit:
                found.append((active, silence_reason(active, quiet)))
        return found


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def silence_reason(active: Active, quiet: float) -> str:
    d, waited = active.deployment, _minutes(quiet)
    since = "edgebox restarted" if active.resumed else "this step began"
    if d.step is DeployStep.BOOTING:
        return (
            f"the deployed OS did not fetch its user-data in the {waited} after the image was "
            "written (does the machine boot from that disk, and does the image run cloud-init "
            "with the CIDATA seed?)"
        )
    if d.step is DeployStep.POWER_OFF:
        return f"the machine was not powered off in the {waited} since {since}"
    work = "deploy" if d.kind is DeployKind.DEPLOY else "erase"
    if active.last_seen is None:
        return (
            f"no call from the machine's agent in the {waited} since {since} "
            f"(is the machine powered on and network-booting for the {work}?)"
        )
    p = active.progress
    doing = f"; its last report: {p.step} {p.done} of {p.total} bytes" if p else ""
    return f"the machine's agent has been silent for {waited} during the {work}{doing}"
