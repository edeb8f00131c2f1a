"""The parts of allocate, deploy and release, built together (they share a store and a tracker).

The composition root (`app.py`) and the tests build them with `build_deploy_parts`; the API
reaches them through `ApiContext.deploy`, the machine-facing server through `agent`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebox.domain.deploy_settings import DeploySettings
from edgebox.services.allocation_service import AllocationService
from edgebox.services.clock import Clock
from edgebox.services.deploy_agent import DeployAgent
from edgebox.services.deploy_outcomes import DeployPower
from edgebox.services.deploy_service import DeployService
from edgebox.services.deploy_views import DeployViews
from edgebox.services.event_service import EventService
from edgebox.services.image_service import ImageService
from edgebox.services.release_service import POLL_S, ReleaseService
from edgebox.storage.database import Database
from edgebox.storage.deploy_store import DeployStore
from edgebox.storage.machine_store import MachineStore


@dataclass(frozen=True, slots=True)
class DeployParts:
    deploys: DeployService
    releases: ReleaseService
    allocation: AllocationService
    views: DeployViews
    agent: DeployAgent


def build_deploy_parts(
    settings: DeploySettings,
    db: Database,
    *,
    images: ImageService,
    events: EventService,
    clock: Clock,
    power: DeployPower | None = None,
    poll_s: float = POLL_S,
) -> DeployParts:
    store, machines = DeployStore(db), MachineStore(db)
    deploys = DeployService(
        settings, store=store, machines=machines, images=images, events=events, clock=clock,
        power=power,
    )  # fmt: skip
    releases = ReleaseService(deploys, store=store, machines=machines, clock=clock, poll_s=poll_s)
    return DeployParts(
        deploys=deploys,
        releases=releases,
        allocation=AllocationService(store),
        views=DeployViews(store, machines, deploys.tracker),
        agent=DeployAgent(deploys, releases, store, clock),
    )
