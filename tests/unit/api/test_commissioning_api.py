"""Scripts, commissioning actions, results and the fleet summary through the real API app
(aiohttp's test client), over a real temporary database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
from edgebox.services.auth_service import AuthService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.unit.services.commissioning_rig import FakeAgent, Rig, make_rig

FAN_CHECK = """#!/bin/sh
# --- edgebox script ---
# name: fan-check
# type: testing
# timeout: 5m
# results:
#   rpm: {title: Slowest fan, unit: rpm}
# --- end ---
echo fans
"""


@dataclass
class Api:
    client: TestClient
    rig: Rig
    admin: dict[str, str]
    olga: dict[str, str]
    otto: dict[str, str]
    viewer: dict[str, str]

    async def call(
        self, method: str, path: str, who: dict[str, str], status: int = 200, **kwargs: Any
    ) -> Any:
        resp = await self.client.request(method, "/api/v1" + path, headers=who, **kwargs)
        assert resp.status == status, await resp.text()
        return await resp.json() if resp.status != 204 else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(db: Database, clock: FakeClock) -> AsyncIterator[Api]:
    rig = await make_rig(db, clock)
    auth = AuthService(AuthStore(db), clock)
    ctx = ApiContext(
        machines=rig.machines,
        auth=auth,
        events=rig.events,
        site=await SiteStore(db).ensure("test-site"),
        version="test",
        storage=db.health,
        scripts=rig.scripts,
        commissioning=rig.service,
    )
    admin = await auth.bootstrap_admin()
    assert admin is not None
    _, olga = await auth.create_token("ops", "olga", Role.OPERATOR)
    _, otto = await auth.create_token("ops2", "otto", Role.OPERATOR)
    _, viewer = await auth.create_token("look", "vic", Role.VIEWER)
    client = TestClient(TestServer(build_api_app(ctx)))
    await client.start_server()
    try:
        yield Api(client, rig, bearer(admin), bearer(olga), bearer(otto), bearer(viewer))
    finally:
        await client.close()


async def test_upload_list_show_and_delete_scripts(api: Api) -> None:
    text_headers = {**api.admin, "Content-Type": "text/plain"}
    made = await api.call("POST", "/scripts", text_headers, 201, data=FAN_CHECK)
    assert (made["name"], made["version"], made["timeout"], made["builtin"]) == (
        "fan-check", 1, 300, False,
    )  # fmt: skip
    assert made["results"]["rpm"]["unit"] == "rpm" and made["created_by"] == "admin"
    again = await api.call(
        "POST", "/scripts", api.admin, 201, json={"content": FAN_CHECK.replace("fans", "fans!")}
    )
    assert again["version"] == 2
    listed = await api.call("GET", "/scripts?type=testing", api.viewer)
    names = [s["name"] for s in listed["items"]]
    assert "fan-check" in names and "edgebox-inventory" not in names
    shown = await api.call("GET", "/scripts/fan-check", api.viewer)
    assert shown["content"].endswith("echo fans!\n")
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    old = await api.call("GET", "/scripts/fan-check?version=1", api.viewer)
    assert old["content"] == FAN_CHECK
    # An operator, a built-in, a viewer: refused.
    refused = await api.call("DELETE", "/scripts/fan-check", api.otto, 403)
    assert "needs role admin" in refused["message"]
    builtin = await api.call("DELETE", "/scripts/edgebox-inventory", api.admin, 409)
    assert "built-in scripts cannot be deleted" in builtin["message"]
    await api.call("DELETE", "/scripts/fan-check", api.viewer, 403)
    await api.call("DELETE", "/scripts/fan-check", api.admin, 204)
    await api.call("GET", "/scripts/fan-check", api.viewer, 404)
    # The versions that ran stay readable by number.
    assert (await api.call("GET", "/scripts/fan-check?version=2", api.viewer))["version"] == 2


async def test_only_an_admin_may_upload_or_delete_scripts_as_they_run_as_root(
    api: Api,
) -> None:
    for who in (api.olga, api.viewer):
        refused = await api.call("POST", "/scripts", who, 403, json={"content": FAN_CHECK})
        assert refused["error"] == "forbidden"
        assert "may not POST /api/v1/scripts: it needs role admin" in refused["message"]
        assert "scripts run as root on every machine commissioned" in refused["message"]
        assert "ask an admin" in refused["message"]
    await api.call("GET", "/scripts/fan-check", api.viewer, 404)  # nothing was stored
    await api.call("POST", "/scripts", api.admin, 201, json={"content": FAN_CHECK})
    refused = await api.call("DELETE", "/scripts/fan-check", api.olga, 403)
    assert "scripts run as root" in refused["message"]
    await api.call("GET", "/scripts/fan-check", api.olga)  # still there, readable by all


async def test_a_bad_header_is_refused_with_line_and_field(api: Api) -> None:
    bad = FAN_CHECK.replace("timeout: 5m", "timeout: soon")
    error = await api.call(
        "POST", "/scripts", {**api.admin, "Content-Type": "text/plain"}, 400, data=bad
    )
    assert error == {
        "error": "bad_request",
        "message": "line 5: timeout: expected seconds or a duration like 5m, got 'soon'",
        "field": "timeout",
    }
    clash = FAN_CHECK.replace("fan-check", "edgebox-inventory")
    error = await api.call("POST", "/scripts", api.admin, 409, json={"content": clash})
    assert "belongs to a built-in script" in error["message"]
    error = await api.call("POST", "/scripts", api.admin, 400, data=b"\xff\xfe")
    assert error["field"] == "content"


async def test_commission_through_the_action_endpoint_and_read_results(api: Api) -> None:
    machine = await api.rig.enlist()
    sid = machine.system_id
    body = {"tests": ["disk-check"], "comment": "new rack"}
    after = await api.call("POST", f"/machines/{sid}/actions/commission", api.olga, json=body)
    assert after["status"] == "commissioning" and after["previous_status"] == "new"
    pending = await api.call("GET", f"/machines/{sid}/results", api.viewer)
    assert pending["run"]["state"] == "running" and pending["run"]["kind"] == "commissioning"
    assert [(r["script"], r["per_device"]) for r in pending["results"]] == [
        ("edgebox-inventory", None), ("firmware-info", None), ("disk-check", "storage"),
    ]  # fmt: skip
    agent = FakeAgent(api.rig.agent, machine)
    await agent.run_plan({"disk-check": {"exit_code": 1, "stderr": b"read error\n"}})
    done = await api.call("GET", f"/machines/{sid}", api.viewer)
    assert done["status"] == "failed_commissioning"
    results = await api.call("GET", f"/machines/{sid}/results?script=disk-check", api.viewer)
    assert [(r["device"], r["status"]) for r in results["results"]] == [
        ("vda", "failed"), ("vdb", "failed"),
    ]  # fmt: skip
    one = results["results"][0]
    detail = await api.call("GET", f"/machines/{sid}/results/{one['id']}", api.viewer)
    assert detail["stderr"] == "read error\n" and detail["stderr_size"] == 11
    assert detail["stdout"] == "ok\n" and detail["exit_code"] == 1 and detail["runtime"] == 1.5
    summary = await api.call("GET", "/commissioning/summary", api.viewer)
    assert summary == {
        "statuses": {"failed_commissioning": 1},
        "running": 0,
        "failures": [{"script": "disk-check", "machines": 1, "failed": 1}],
    }
    # A second run: the old one stays readable by id.
    await api.call("POST", f"/machines/{sid}/actions/test", api.olga, json={"tests": ["cpu-burn"]})
    latest = await api.call("GET", f"/machines/{sid}/results", api.viewer)
    assert [r["kind"] for r in latest["runs"]] == ["testing", "commissioning"]
    first = await api.call("GET", f"/machines/{sid}/results?run={pending['run']['id']}", api.viewer)
    assert len(first["results"]) == 4
    aborted = await api.call("POST", f"/machines/{sid}/actions/abort", api.olga)
    assert aborted["status"] == "failed_commissioning"


async def test_a_run_takes_script_parameters_and_refuses_wrong_ones(api: Api) -> None:
    machine = await api.rig.enlist()
    sid = machine.system_id
    wrong = {"tests": ["disk-check"], "parameters": {"disk-check": {"passes": 0}}}
    error = await api.call("POST", f"/machines/{sid}/actions/commission", api.olga, 400, json=wrong)
    assert error["field"] == "parameters.disk-check.passes"
    assert "0 is outside 1.." in error["message"]
    for shape, field in (
        ({"parameters": ["passes"]}, "parameters"),
        ({"parameters": {"disk-check": 5}}, "parameters.disk-check"),
        ({"parameters": {"disk-check": {"passes": None}}}, "parameters.disk-check.passes"),
    ):
        error = await api.call(
            "POST", f"/machines/{sid}/actions/commission", api.olga, 400, json=shape
        )
        assert error["field"] == field, error
    assert (await api.call("GET", f"/machines/{sid}", api.viewer))["status"] == "new"
    body = {"tests": ["disk-check"], "parameters": {"disk-check": {"passes": 7}}}
    await api.call("POST", f"/machines/{sid}/actions/commission", api.olga, json=body)
    results = await api.call("GET", f"/machines/{sid}/results?script=disk-check", api.viewer)
    assert [r["parameters"] for r in results["results"]] == [{"passes": 7}]
    # The bulk endpoint takes the same, and refuses per machine with the reason.
    two = await api.rig.enlist("52:54:00:00:00:02", {"nics": [], "disks": []})
    answer = await api.call(
        "POST", "/commissioning", api.olga,
        json={"action": "commission", "machines": [two.system_id], "tests": ["disk-check"],
              "parameters": {"cpu-burn": {"x": 1}}},
    )  # fmt: skip
    assert answer["refused"] == 1
    assert "cpu-burn is not a script of this run" in answer["items"][0]["reason"]


async def test_action_refusals(api: Api) -> None:
    machine = await api.rig.enlist()
    sid = machine.system_id
    error = await api.call("POST", f"/machines/{sid}/actions/test", api.olga, 409)
    assert (
        error["error"] == "illegal_action"
        and "cannot test a machine that is new" in (error["message"])
    )
    error = await api.call(
        "POST", f"/machines/{sid}/actions/commission", api.olga, 400, json={"tests": ["nope"]}
    )
    assert error["field"] == "tests" and "no script named 'nope'" in error["message"]
    error = await api.call(
        "POST", f"/machines/{sid}/actions/commission", api.olga, 400, json={"pool": "x"}
    )
    assert error["field"] == "pool"
    await api.call("POST", f"/machines/{sid}/actions/commission", api.viewer, 403)
    assert (await api.call("GET", f"/machines/{sid}/results", api.viewer))["run"] is None
    await api.call("GET", f"/machines/{sid}/results/999", api.viewer, 404)
    await api.call("GET", "/machines/nosuch/results", api.viewer, 404)


async def test_bulk_commissioning_answers_per_machine(api: Api) -> None:
    one = await api.rig.enlist()
    two = await api.rig.enlist("52:54:00:00:00:02", {"nics": [], "disks": []})
    await api.call("POST", f"/machines/{two.system_id}/actions/lock", api.olga, 409)
    await api.rig.set_status(two.system_id, "deployed")
    answer = await api.call(
        "POST",
        "/commissioning",
        api.olga,
        json={"action": "commission", "machines": [one.system_id, two.system_id, "nosuch"],
              "tests": []},
    )  # fmt: skip
    assert (answer["accepted"], answer["refused"]) == (1, 2)
    by_id = {i["system_id"]: i for i in answer["items"]}
    assert by_id[one.system_id]["accepted"] and by_id[one.system_id]["status"] == "commissioning"
    assert "cannot commission a machine that is deployed" in by_id[two.system_id]["reason"]
    by_status = await api.call(
        "POST",
        "/commissioning",
        api.olga,
        json={"action": "test", "filter": {"status": ["deployed"]}, "tests": ["cpu-burn"]},
    )
    assert [(i["system_id"], i["accepted"]) for i in by_status["items"]] == [(two.system_id, True)]
    error = await api.call("POST", "/commissioning", api.olga, 400, json={"action": "test"})
    assert error["field"] == "machines"
    error = await api.call(
        "POST", "/commissioning", api.olga, 400, json={"action": "deploy", "machines": ["x"]}
    )
    assert error["field"] == "action"


async def test_openapi_documents_the_new_routes(api: Api) -> None:
    doc = await api.call("GET", "/openapi.json", api.viewer)
    validate(doc)
    for path in (
        "/api/v1/scripts",
        "/api/v1/scripts/{name}",
        "/api/v1/commissioning",
        "/api/v1/commissioning/summary",
        "/api/v1/machines/{system_id}/results",
        "/api/v1/machines/{system_id}/results/{result_id}",
    ):
        assert path in doc["paths"], path
    actions = doc["paths"]["/api/v1/machines/{system_id}/actions/{action}"]["post"]
    enum = actions["parameters"][1]["schema"]["enum"]
    assert {"commission", "test", "abort"} <= set(enum)


async def test_result_ids_and_runs_are_strict(api: Api) -> None:
    for path, field in [
        ("/machines/x/results/" + "9" * 4301, "result_id"),
        (f"/machines/x/results/{2**63}", "result_id"),
        ("/machines/x/results?run=%C2%B3", "run"),
        ("/scripts/cpu-stress?version=-1", "version"),
    ]:
        body = await api.call("GET", path, api.viewer, status=400)
        assert body["field"] == field, (path, body)
    body = await api.call(
        "POST", "/commissioning", api.olga, status=400,
        json={"action": "test", "machines": ["x"], "parameters": None},
    )  # fmt: skip
    assert body["field"] == "parameters"
