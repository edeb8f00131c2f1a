"""Allocate, deploy and release over the API (aiohttp's test client), with the real services
and database and simulated machines (the deploy rig) doing the machine's part."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
from edgebox.domain.lifecycle import Status
from edgebox.services.auth_service import AuthService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.unit.services.deploy_rig import DeployRig, deploy_rig

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOk8bq6y olga@laptop"


@dataclass
class Api:
    client: TestClient
    rig: DeployRig
    operator: dict[str, str]
    viewer: dict[str, str]

    async def call(
        self, method: str, path: str, body: Any = None, who: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        resp = await self.client.request(
            method, f"/api/v1{path}", json=body, headers=who or self.operator
        )
        return resp.status, await resp.json()


@pytest.fixture
async def api(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Api]:
    async with deploy_rig(db, clock, tmp_path) as rig:
        auth = AuthService(AuthStore(db), clock)
        ctx = ApiContext(
            machines=rig.machines, auth=auth, events=rig.events,
            site=await SiteStore(db).ensure("test-site"), version="test", storage=db.health,
            images=rig.images,
            deploy=rig.parts,
        )  # fmt: skip
        _, operator = await auth.create_token("ops", "olga", Role.OPERATOR)
        _, viewer = await auth.create_token("look", "vic", Role.VIEWER)
        client = TestClient(TestServer(build_api_app(ctx)))
        await client.start_server()
        try:
            yield Api(client, rig, {"Authorization": f"Bearer {operator}"},
                      {"Authorization": f"Bearer {viewer}"})  # fmt: skip
        finally:
            await client.close()


async def test_allocate_by_constraints_all_or_nothing(api: Api) -> None:
    small = await api.rig.ready_machine(cores=4, memory=8192, tags=("gpu",))
    big = await api.rig.ready_machine(cores=32, memory=131072, tags=("gpu",))
    await api.rig.ready_machine(cores=64, memory=262144)
    body = {"constraints": {"min_cores": 8, "tags": ["gpu"]}, "count": 1}
    status, answer = await api.call("POST", "/allocate", body)
    assert status == 200, answer
    [machine] = answer["machines"]
    assert (machine["system_id"], machine["status"], machine["owner"]) == (
        big.system_id, "allocated", "olga",
    )  # fmt: skip
    status, answer = await api.call(
        "POST", "/allocate", {"constraints": {"tags": ["gpu"], "min_memory": 4096}, "count": 2}
    )
    assert status == 409 and answer["error"] == "conflict"
    assert answer["message"] == (
        "asked for 2 machine(s) with at least 4096 MiB of memory, tag gpu: 1 of 2 Ready "
        "machine(s) match; 1 lack tag gpu"
    )
    assert (await api.rig.machines.get(small.system_id)).status is Status.READY
    for body, field in (
        ({"count": 0}, "count"),
        ({"constraints": {"cores": 2}}, "constraints.cores"),
        ({"constraints": {"min_cores": "8"}}, "constraints.min_cores"),
        ({"constraints": []}, "constraints"),
    ):
        status, answer = await api.call("POST", "/allocate", body)
        assert status == 400 and answer["field"] == field, (body, answer)
    status, _ = await api.call("POST", "/allocate", {}, who=api.viewer)
    assert status == 403


async def test_deploy_one_machine_through_its_actions(api: Api) -> None:
    machine = await api.rig.ready_machine()
    sid = machine.system_id
    status, answer = await api.call("POST", f"/machines/{sid}/actions/allocate", {})
    assert (status, answer["status"], answer["owner"]) == (200, "allocated", "olga")
    body = {"image": "tiny", "user_data": "#cloud-config\n", "ssh_keys": [KEY],
            "hostname": "db-1"}  # fmt: skip
    status, answer = await api.call("POST", f"/machines/{sid}/actions/deploy", body)
    assert status == 200, answer
    assert (answer["status"], answer["hostname"]) == ("deploying", "db-1")
    agent = api.rig.agent(machine)
    await agent.boot()
    await agent.deploy(log=b"dd: 200000 bytes\n")
    status, view = await api.call("GET", f"/machines/{sid}/deployment", who=api.viewer)
    assert status == 200
    assert {k: view[k] for k in ("kind", "state", "step", "status", "disk", "hostname")} == {
        "kind": "deploy", "state": "running", "step": "booting", "status": "deploying",
        "disk": "vda", "hostname": "db-1",
    }  # fmt: skip
    assert view["image"]["name"] == "tiny" and view["ssh_keys"] == 1
    assert view["progress"] == {"step": "verify", "done": 200_000, "total": 200_000}
    assert view["log"] == "dd: 200000 bytes\n" and view["log_size"] == 17
    await agent.cloud_init(sid, "user-data")
    status, view = await api.call("GET", f"/machines/{sid}/deployment?log=4")
    assert (view["state"], view["status"], view["log"]) == ("succeeded", "deployed", "tes\n")
    status, answer = await api.call(
        "POST", f"/machines/{sid}/actions/release", {"erase": "quick", "comment": "done"}
    )
    assert (status, answer["status"]) == (200, "disk_erasing")
    status, answer = await api.call("POST", f"/machines/{sid}/actions/abort", {})
    assert (status, answer["status"]) == (200, "failed_disk_erasing")


async def test_action_options_are_checked_and_named(api: Api) -> None:
    machine = await api.rig.ready_machine()
    sid = machine.system_id
    cases = [
        ("deploy", {}, "image"),
        ("deploy", {"image": "tiny", "ssh_keys": "ssh-rsa x"}, "ssh_keys"),
        ("deploy", {"image": "tiny", "ssh_keys": ["nope"]}, "ssh_keys[0]"),
        ("deploy", {"image": "tiny", "hostname": "No Good"}, "hostname"),
        ("deploy", {"image": "tiny", "erase": "quick"}, "erase"),
        ("release", {"erase": "shred"}, "erase"),
    ]
    for action, body, field in cases:
        status, answer = await api.call("POST", f"/machines/{sid}/actions/{action}", body)
        assert status == 400 and answer["field"] == field, (action, body, answer)
    status, answer = await api.call("POST", f"/machines/{sid}/actions/deploy", {"image": "nope"})
    assert status == 404 and "no image 'nope'" in answer["message"]
    status, answer = await api.call("POST", f"/machines/{sid}/actions/release", {})
    assert status == 409 and answer["error"] == "illegal_action"
    status, answer = await api.call("GET", f"/machines/{sid}/deployment")
    assert status == 404
    assert api.rig.power.requests == []


async def test_bulk_deploy_in_waves_and_follow_the_rollout(api: Api) -> None:
    machines = [await api.rig.ready_machine(tags=("rack1",)) for _ in range(3)]
    await api.rig.ready_machine(tags=("rack1",), status=Status.NEW)
    body = {"filter": {"tag": ["rack1"]}, "image": "tiny", "wave": 2, "max_failures": 1}
    status, answer = await api.call("POST", "/deploy", body)
    assert status == 200, answer
    assert (answer["accepted"], answer["refused"]) == (3, 1)
    refused = next(i for i in answer["items"] if not i["accepted"])
    assert "cannot deploy a machine that is new" in refused["reason"]
    rollout = answer["rollout"]
    status, view = await api.call("GET", f"/rollouts/{rollout}", who=api.viewer)
    assert status == 200
    assert (view["state"], view["wave_size"], view["max_failures"]) == ("running", 2, 1)
    assert view["counts"] == {"running": 2, "queued": 1}
    agent = api.rig.agent(machines[0])
    await agent.boot()
    await agent.deploy(fail={"step": "write", "error": "EIO on vda"})
    for _ in range(500):
        status, view = await api.call("GET", f"/rollouts/{rollout}")
        if view["state"] != "running":
            break
        await asyncio.sleep(0.01)
    assert view["state"] == "stopped" and view["counts"] == {
        "failed": 1, "running": 1, "skipped": 1,
    }  # fmt: skip
    failed = next(i for i in view["items"] if i["state"] == "failed")
    assert (failed["error"], failed["failed_step"], failed["status"]) == (
        "EIO on vda", "write", "failed_deployment",
    )  # fmt: skip
    bad_bodies = [
        ({"image": "tiny"}, "machines"),
        ({"filter": {}, "image": "tiny"}, "filter"),
        ({"machines": ["x"], "image": "tiny", "wave": -1}, "wave"),
        ({"machines": ["x"]}, "image"),
    ]
    for body, field in bad_bodies:
        status, answer = await api.call("POST", "/deploy", body)
        assert status == 400 and answer["field"] == field, (body, answer)
    assert (await api.call("GET", "/rollouts/99"))[0] == 404


async def test_bulk_release(api: Api) -> None:
    machines = [await api.rig.ready_machine() for _ in range(2)]
    for m in machines:
        await api.call("POST", f"/machines/{m.system_id}/actions/allocate", {})
    status, answer = await api.call(
        "POST", "/release", {"machines": [m.system_id for m in machines], "erase": "full"}
    )
    assert (status, answer["accepted"]) == (200, 2)
    for _ in range(500):
        status, view = await api.call("GET", f"/rollouts/{answer['rollout']}")
        if view["state"] != "running":
            break
        await asyncio.sleep(0.01)
    assert (view["kind"], view["state"], view["counts"]) == ("release", "done", {"succeeded": 2})
    assert [i["status"] for i in view["items"]] == ["ready", "ready"]


async def test_numbers_out_of_range_name_their_field(api: Api) -> None:
    for path, field in [
        ("/rollouts/" + "9" * 4301, "rollout_id"),
        (f"/rollouts/{2**63}", "rollout_id"),
        ("/machines/x/deployment?log=%C2%B3", "log"),
    ]:
        status, body = await api.call("GET", path)
        assert status == 400 and body["field"] == field, (path, body)
        assert len(body["message"]) < 200
    for body, field in [
        ({"count": 10_001}, "count"),
        ({"count": None}, "count"),
        ({"constraints": None}, "constraints"),
        ({"constraints": {"min_cores": 2**31 + 1}}, "constraints.min_cores"),
    ]:
        status, answer = await api.call("POST", "/allocate", body)
        assert status == 400 and answer["field"] == field, (body, answer)
