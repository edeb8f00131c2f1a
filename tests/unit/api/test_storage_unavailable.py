"""A write the database cannot take is a JSON 503 with Retry-After (never a 500, never a hang);
reads go on; /health says that storage is failing and why, then that it is ok again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.errors import StorageUnavailable
from edgebox.net.agent_http import storage_unavailable
from edgebox.services.auth_service import TOUCH_INTERVAL, AuthService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.machine_service import MachineService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.unit.storage.flaky import IO_ERROR, FlakyConnection, flaky_database


@dataclass
class Rig:
    client: TestClient
    conn: FlakyConnection
    admin: dict[str, str]
    clock: FakeClock

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        async with asyncio.timeout(10):  # never a hang
            resp = await self.client.request(method, path, headers=self.admin, **kw)
            return resp.status, await resp.json(), resp.headers


@pytest.fixture
async def rig(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rig]:
    async with flaky_database(tmp_path / "edgebox.db", clock) as (db, conn):
        auth = AuthService(AuthStore(db), clock)
        ctx = ApiContext(
            machines=MachineService(MachineStore(db)),
            auth=auth,
            events=EventService(EventStore(db), EventBus()),
            site=await SiteStore(db).ensure("test-site"),
            version="test",
            storage=db.health,
        )
        token = await auth.bootstrap_admin()
        assert token is not None
        client = TestClient(TestServer(build_api_app(ctx)))
        await client.start_server()
        try:
            yield Rig(client, conn, {"Authorization": f"Bearer {token}"}, clock)
        finally:
            await client.close()


async def test_a_write_on_a_full_disk_is_a_503_and_works_again_once_space_is_back(
    rig: Rig,
) -> None:
    status, first, _ = await rig.call("POST", "/api/v1/machines", json={"mac": "52:54:00:00:00:01"})
    assert status == 201

    # What SQLite does on a full disk: the statement fails, the transaction is gone with it.
    rig.conn.fail("INSERT INTO machines", abort=True)
    status, body, headers = await rig.call(
        "POST", "/api/v1/machines", json={"mac": "52:54:00:00:00:02"}
    )
    assert status == 503
    assert body["error"] == "storage_unavailable"
    assert body["message"].startswith("the database's disk is full (")
    assert "free some space there" in body["message"]
    assert headers["Retry-After"] == "5"

    status, health, _ = await rig.call("GET", "/api/v1/health")
    assert status == 200 and health["status"] == "ok" and health["site_name"] == "test-site"
    assert health["storage"] == f"failing: {body['message']}"

    status, listed, _ = await rig.call("GET", "/api/v1/machines")  # reads go on
    assert status == 200
    assert [m["system_id"] for m in listed["items"]] == [first["system_id"]]

    rig.conn.heal()  # space is back: no restart, no action
    status, second, _ = await rig.call(
        "POST", "/api/v1/machines", json={"mac": "52:54:00:00:00:02"}
    )
    assert status == 201
    status, health, _ = await rig.call("GET", "/api/v1/health")
    assert health["storage"] == "ok"
    status, listed, _ = await rig.call("GET", "/api/v1/machines")
    assert {m["system_id"] for m in listed["items"]} == {first["system_id"], second["system_id"]}


async def test_a_failed_commit_is_a_503_too(rig: Rig) -> None:
    assert (await rig.call("GET", "/api/v1/machines"))[0] == 200  # the token's use is noted
    rig.conn.fail("COMMIT", IO_ERROR, times=1)
    status, body, _ = await rig.call("POST", "/api/v1/machines", json={"mac": "52:54:00:00:00:03"})
    assert status == 503 and body["error"] == "storage_unavailable"
    assert "check the disk and the kernel log" in body["message"]
    status, listed, _ = await rig.call("GET", "/api/v1/machines")
    assert listed["items"] == []  # nothing of it was stored


async def test_a_read_does_not_fail_because_its_token_cannot_be_marked_used(rig: Rig) -> None:
    assert (await rig.call("GET", "/api/v1/machines"))[0] == 200
    rig.clock.advance(TOUCH_INTERVAL + 1)  # the next call would write last_used_at
    rig.conn.fail("UPDATE api_tokens", abort=True)
    status, _, _ = await rig.call("GET", "/api/v1/machines")
    assert status == 200
    assert rig.conn.failed  # it did try


async def test_the_machine_facing_server_answers_503_json_as_well() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise StorageUnavailable("the database's disk is full (0 bytes free in /d)", "disk_full")

    app = web.Application(middlewares=[storage_unavailable])
    app.router.add_get("/boot/ipxe", handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/boot/ipxe")
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert await resp.json() == {
            "error": "storage_unavailable",
            "message": "the database's disk is full (0 bytes free in /d)",
        }
