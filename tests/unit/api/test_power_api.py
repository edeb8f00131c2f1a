"""The power endpoints over a real database and the real manual driver: BMC settings that
never show the password, queued operations, bulk requests, and errors a person can act on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
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


class PowerApi:
    def __init__(self, client: TestClient, power: PowerService, op: dict[str, str],
                 viewer: dict[str, str]) -> None:  # fmt: skip
        self.client = client
        self.power = power
        self.op = op
        self.viewer = viewer

    async def machine(self, mac: str, tag: str = "") -> str:
        body = {"mac": mac, "tags": [tag] if tag else []}
        resp = await self.client.post("/api/v1/machines", json=body, headers=self.op)
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["system_id"])

    async def call(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        resp = await self.client.request(
            method, "/api/v1" + path, json=body, headers=headers or self.op
        )
        text = await resp.text()
        return resp.status, (await resp.json() if text else {})


@pytest.fixture
async def papi(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[PowerApi]:
    bus = EventBus()
    db.on_commit(bus.publish)
    auth = AuthService(AuthStore(db), clock)
    power = PowerService(
        PowerSettings(poll_interval=0, retry_backoff=0.0),
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
        storage=db.health,
        power=power,
    )
    _, operator = await auth.create_token("ops", "olga", Role.OPERATOR)
    _, viewer = await auth.create_token("look", "vic", Role.VIEWER)
    client = TestClient(TestServer(build_api_app(ctx)))
    await client.start_server()
    try:
        yield PowerApi(
            client, power, {"Authorization": f"Bearer {operator}"},
            {"Authorization": f"Bearer {viewer}"},
        )  # fmt: skip
    finally:
        await client.close()


async def test_bmc_is_set_shown_without_password_and_removed(papi: PowerApi) -> None:
    sid = await papi.machine("52:54:00:10:00:01")
    status, body = await papi.call("GET", f"/machines/{sid}/bmc")
    assert status == 404 and "has no BMC" in str(body["message"])
    status, body = await papi.call(
        "PUT",
        f"/machines/{sid}/bmc",
        {"driver": "manual", "address": "rack 3, slot 12", "username": "u", "password": "pw-xyz"},
    )
    assert status == 200, body
    assert body == {"driver": "manual", "address": "rack 3, slot 12", "username": "u",
                    "has_password": True, "options": {}}  # fmt: skip
    status, shown = await papi.call("GET", f"/machines/{sid}/bmc", headers=papi.viewer)
    assert status == 200 and "pw-xyz" not in str(shown)
    status, _ = await papi.call("PUT", f"/machines/{sid}/bmc", {"driver": "manual"}, papi.viewer)
    assert status == 403
    assert (await papi.call("DELETE", f"/machines/{sid}/bmc"))[0] == 204
    assert (await papi.call("GET", f"/machines/{sid}/bmc"))[0] == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"driver": "ipmy"}, "driver", "unknown power driver 'ipmy' (known: ipmi, lab, manual"),
        ({"driver": "ipmi"}, "address", "the ipmi driver needs the BMC's address"),
        ({"driver": "ipmi", "address": "10.0.0.9", "options": {"port": "x"}}, "options",
         "option port: expected an integer"),
        ({"driver": "ipmi", "address": "10.0.0.9", "options": {"colour": 1}}, "options",
         "unknown option 'colour' for driver ipmi"),
        ({"driver": "manual", "secret": 1}, "secret", "unknown field"),
        ({"driver": "webhook", "options": {"off_url": "http://127.0.0.1:9/off"}}, "options",
         "option on_url: required by the webhook driver"),
        ({"driver": "redfish", "address": "ftp://bmc"}, "options",
         "expected an http:// or https:// URL"),
    ],
)  # fmt: skip
async def test_bad_bmc_settings_name_the_field(
    papi: PowerApi, body: dict[str, object], field: str, words: str
) -> None:
    sid = await papi.machine("52:54:00:10:00:02")
    status, answer = await papi.call("PUT", f"/machines/{sid}/bmc", body)
    assert status == 400 and answer["field"] == field and words in str(answer["message"])


async def test_power_operations_queue_run_and_wait_for_a_person(papi: PowerApi) -> None:
    sid = await papi.machine("52:54:00:10:00:03")
    status, body = await papi.call("POST", f"/machines/{sid}/power", {"op": "on"})
    assert status == 409 and "has no BMC" in str(body["message"])
    await papi.call("PUT", f"/machines/{sid}/bmc", {"driver": "manual"})
    status, body = await papi.call("POST", f"/machines/{sid}/power", {"op": "on-network"})
    assert status == 202 and body["state"] == "queued" and body["op"] == "on-network"
    task = asyncio.create_task(papi.power.run())
    try:
        async with asyncio.timeout(5):
            while True:
                status, ops = await papi.call("GET", f"/power/ops?id={body['id']}")
                if ops["items"][0]["state"] == "waiting":
                    break
                await asyncio.sleep(0.02)
        assert "booting from the network" in ops["items"][0]["error"]
        status, done = await papi.call("POST", f"/machines/{sid}/power/confirm")
        assert status == 200 and done["ops"][0]["state"] == "done"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    status, shown = await papi.call("GET", f"/machines/{sid}/power", headers=papi.viewer)
    assert status == 200 and [o["state"] for o in shown["ops"]] == ["done"]
    status, body = await papi.call("POST", f"/machines/{sid}/power", {"op": "explode"})
    assert status == 400 and "unknown operation 'explode'" in str(body["message"])


async def test_bulk_power_by_filter_reports_each_machine(papi: PowerApi) -> None:
    rack = [await papi.machine(f"52:54:00:10:01:0{i}", tag="rack3") for i in range(3)]
    other = await papi.machine("52:54:00:10:01:09", tag="rack4")
    for sid in (*rack[:2], other):
        await papi.call("PUT", f"/machines/{sid}/bmc", {"driver": "manual"})
    status, body = await papi.call("POST", "/power", {"op": "off", "filter": {"tag": ["rack3"]}})
    assert status == 202
    items = {i["system_id"]: i for i in body["items"]}
    assert set(items) == set(rack)
    assert items[rack[0]]["op"]["state"] == "queued" and not items[rack[0]]["refused"]
    assert "has no BMC" in items[rack[2]]["refused"]
    status, body = await papi.call("POST", "/power", {"op": "off", "filter": {}})
    assert status == 400 and "every machine" in str(body["message"])
    status, body = await papi.call("POST", "/power", {"op": "off"})
    assert status == 400 and body["field"] == "machines"


async def test_operation_ids_are_strict_and_bounded(papi: PowerApi) -> None:
    for query in ["id=%C2%B3", f"id={2**63}", "id=0", ",".join(["id=1"] * 301).replace(",", "&")]:
        status, body = await papi.call("GET", f"/power/ops?{query}", headers=papi.viewer)
        assert status == 400 and body["field"] == "id", (query[:40], body)
    status, body = await papi.call("GET", "/power/ops?id=1,2", headers=papi.viewer)
    assert status == 200 and body == {"items": []}
    system_id = await papi.machine("52:54:00:00:00:31")
    status, body = await papi.call(
        "PUT", f"/machines/{system_id}/bmc", {"driver": "manual", "options": None}
    )
    assert status == 400 and body["field"] == "options"
