"""What the API handlers reach: the services, typed, under one aiohttp AppKey."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from edgebox.domain.models import Site
from edgebox.services.auth_service import AuthService
from edgebox.services.commissioning_service import CommissioningService
from edgebox.services.deploy_parts import DeployParts
from edgebox.services.dhcp_service import DhcpService
from edgebox.services.event_service import EventService
from edgebox.services.image_service import ImageService
from edgebox.services.machine_service import MachineService
from edgebox.services.power_service import PowerService
from edgebox.services.script_service import ScriptService
from edgebox.services.tag_service import TagService
from edgebox.storage.failures import StorageHealth


@dataclass(frozen=True, slots=True)
class ApiContext:
    machines: MachineService
    auth: AuthService
    events: EventService
    site: Site
    version: str
    storage: StorageHealth  # whether the database takes writes now (`/health`)
    dhcp: DhcpService | None = None
    tags: TagService | None = None
    power: PowerService | None = None
    scripts: ScriptService | None = None
    commissioning: CommissioningService | None = None
    images: ImageService | None = None
    deploy: DeployParts | None = None


CONTEXT = web.AppKey("edgebox_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]
