"""Issue #13 through the API: an operator who re-points an admin's BMC at a listener of their
own gets no stored secret on `bmc/test`; secret options are never shown to viewers; what the
listener answers in an error body is not echoed back. The listener is an aiohttp server on
127.0.0.1, which `power.allow_targets` opens for this test (loopback is refused by default)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
from edgebox.domain.errors import InvalidInput
from edgebox.domain.settings import PowerSettings
from edgebox.services.auth_service import AuthService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.machine_service import MachineService
from edgebox.services.power_service import PowerService
from edgebox.services.secret_box import SecretBox
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import PowerStore
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.lab.redfish_server import serve_app

ADMIN_PASSWORD = "admin-set-Pa55"
K_G = "00112233445566778899"


@dataclass
class Listener:
    seen: list[dict[str, str]] = field(default_factory=list)
    status: tuple[int, str] = (200, "power is off")

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        return web.Response(status=self.status[0], text=self.status[1])


@dataclass
class Site:
    client: TestClient
    admin: dict[str, str]
    operator: dict[str, str]
    viewer: dict[str, str]
    listener: Listener
    listener_url: str

    async def call(
        self, who: dict[str, str], method: str, path: str, body: object = None
    ) -> tuple[int, Any]:
        resp = await self.client.request(method, "/api/v1" + path, json=body, headers=who)
        text = await resp.text()
        return resp.status, (json.loads(text) if text else {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def site(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Site]:
    bus = EventBus()
    db.on_commit(bus.publish)
    auth = AuthService(AuthStore(db), clock)
    power = PowerService(
        PowerSettings(poll_interval=0, allow_targets=("127.0.0.0/8",)),
        store=PowerStore(db),
        machines=MachineStore(db),
        secrets=SecretBox.open(tmp_path / "secrets.key"),
        clock=clock,
    )
    ctx = ApiContext(
        machines=MachineService(MachineStore(db)),
        auth=auth,
        events=EventService(EventStore(db), bus),
        site=await SiteStore(db).ensure("test"),
        version="test",
        power=power,
        storage=db.health,
    )
    admin = await auth.bootstrap_admin()
    assert admin is not None
    _, operator = await auth.create_token("ops", "olga", Role.OPERATOR)
    _, viewer = await auth.create_token("look", "vic", Role.VIEWER)
    listener = Listener()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", listener.handle)
    client = TestClient(TestServer(build_api_app(ctx)))
    await client.start_server()
    try:
        async with serve_app(app) as url:
            yield Site(client, bearer(admin), bearer(operator), bearer(viewer), listener, url)
    finally:
        await client.close()


async def machine_with_admin_bmc(site: Site) -> str:
    status, made = await site.call(site.operator, "POST", "/machines", {"mac": "52:54:00:30:00:01"})
    assert status == 201
    sid = str(made["system_id"])
    status, bmc = await site.call(
        site.admin, "PUT", f"/machines/{sid}/bmc",
        {"driver": "ipmi", "address": "10.0.0.5", "username": "root",
         "password": ADMIN_PASSWORD, "options": {"k_g": K_G}},
    )  # fmt: skip
    assert status == 200, bmc
    return sid


def webhook_at(url: str) -> dict[str, object]:
    return {
        "driver": "webhook",
        "options": {"on_url": f"{url}/on", "off_url": f"{url}/off", "status_url": f"{url}/st"},
    }


async def test_a_re_pointed_bmc_sends_no_stored_secret(site: Site) -> None:
    sid = await machine_with_admin_bmc(site)
    status, bmc = await site.call(site.operator, "PUT", f"/machines/{sid}/bmc",
                                  webhook_at(site.listener_url))  # fmt: skip
    assert status == 200, bmc
    assert bmc["has_password"] is False
    assert bmc["secrets_dropped"] == ["password", "k_g"]
    status, result = await site.call(site.operator, "POST", f"/machines/{sid}/bmc/test")
    assert status == 200 and result["ok"] is True and result["power_state"] == "off"
    assert len(site.listener.seen) == 1
    assert "Authorization" not in site.listener.seen[0]
    assert ADMIN_PASSWORD not in json.dumps(site.listener.seen)


async def test_secret_options_are_never_shown(site: Site) -> None:
    sid = await machine_with_admin_bmc(site)
    for who in (site.viewer, site.operator, site.admin):
        status, bmc = await site.call(who, "GET", f"/machines/{sid}/bmc")
        assert status == 200
        assert bmc["has_k_g"] is True and bmc["has_password"] is True
        assert "k_g" not in bmc["options"]
        assert K_G not in json.dumps(bmc) and ADMIN_PASSWORD not in json.dumps(bmc)
    status, events = await site.call(site.viewer, "GET", "/events?limit=1000")
    assert status == 200
    assert K_G not in json.dumps(events) and ADMIN_PASSWORD not in json.dumps(events)

    headers = {**webhook_at(site.listener_url)}
    headers["options"] = {**headers["options"], "headers": '{"X-Api-Key": "k-live-42"}'}  # type: ignore[dict-item]
    status, bmc = await site.call(site.operator, "PUT", f"/machines/{sid}/bmc", headers)
    assert status == 200
    status, shown = await site.call(site.viewer, "GET", f"/machines/{sid}/bmc")
    assert shown["has_headers"] is True and shown["header_names"] == ["X-Api-Key"]
    assert "k-live-42" not in json.dumps(shown)
    await site.call(site.operator, "POST", f"/machines/{sid}/bmc/test")
    assert site.listener.seen[-1]["X-Api-Key"] == "k-live-42"  # it does reach the BMC


async def test_an_error_body_is_not_echoed_into_the_answer_or_events(site: Site) -> None:
    sid = await machine_with_admin_bmc(site)
    site.listener.status = (403, "internal: db_password=hunter2")
    await site.call(site.operator, "PUT", f"/machines/{sid}/bmc", webhook_at(site.listener_url))
    status, result = await site.call(site.operator, "POST", f"/machines/{sid}/bmc/test")
    assert status == 200 and result["ok"] is False and result["fatal"] is True
    assert "HTTP 403 Forbidden" in result["error"]
    assert "hunter2" not in json.dumps(result)
    status, events = await site.call(site.viewer, "GET", "/events?limit=1000")
    assert "hunter2" not in json.dumps(events)


async def test_a_loopback_target_needs_the_allow_list(
    db: Database, clock: FakeClock, tmp_path: Path, site: Site
) -> None:
    strict = PowerService(
        PowerSettings(poll_interval=0),
        store=PowerStore(db),
        machines=MachineStore(db),
        secrets=SecretBox.open(tmp_path / "secrets.key"),
        clock=clock,
    )
    sid = await machine_with_admin_bmc(site)
    with pytest.raises(InvalidInput, match=r"power\.allow_targets") as caught:
        await strict.set_bmc(sid, "olga", **webhook_at(site.listener_url))  # type: ignore[arg-type]
    assert "127.0.0.1 is a loopback address" in str(caught.value)
    assert site.listener.seen == []
