"""An API under aiohttp's test client, over a real temporary database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
from edgebox.services.auth_service import AuthService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.machine_service import MachineService
from edgebox.services.tag_service import TagService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.site_store import SiteStore
from edgebox.storage.tag_store import TagStore
from tests.conftest import FakeClock


@dataclass
class Api:
    client: TestClient
    ctx: ApiContext
    admin: dict[str, str]
    operator: dict[str, str]
    viewer: dict[str, str]

    async def create(self, mac: str, **fields: object) -> dict[str, object]:
        resp = await self.client.post(
            "/api/v1/machines", json={"mac": mac, **fields}, headers=self.operator
        )
        assert resp.status == 201, await resp.text()
        body: dict[str, object] = await resp.json()
        return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(db: Database, clock: FakeClock) -> AsyncIterator[Api]:
    bus = EventBus()
    db.on_commit(bus.publish)
    site = await SiteStore(db).ensure("test-site")
    auth = AuthService(AuthStore(db), clock)
    ctx = ApiContext(
        machines=MachineService(MachineStore(db)),
        auth=auth,
        events=EventService(EventStore(db), bus),
        site=site,
        version="test",
        storage=db.health,
        tags=TagService(TagStore(db)),
    )
    admin = await auth.bootstrap_admin()
    assert admin is not None
    _, operator = await auth.create_token("ops", "olga", Role.OPERATOR)
    _, viewer = await auth.create_token("look", "vic", Role.VIEWER)
    client = TestClient(TestServer(build_api_app(ctx)))
    await client.start_server()
    try:
        yield Api(client, ctx, bearer(admin), bearer(operator), bearer(viewer))
    finally:
        await client.close()
