"""The /machines endpoints through the real app, over a real database."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.api.conftest import Api

MAC = "52:54:00:12:34:56"


async def test_create_and_show(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/machines",
        json={"mac": "52-54-00-12-34-56", "hostname": "n1", "tags": ["gpu"], "pool": "hpc"},
        headers=api.operator,
    )
    assert resp.status == 201
    machine = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/machines/{machine['system_id']}"
    assert machine["status"] == "new"
    assert machine["hostname"] == "n1"
    assert machine["interfaces"] == [{"mac": MAC, "name": "", "boot": True}]
    assert machine["tags"] == ["gpu"] and machine["pool"] == "hpc"
    assert machine["created_at"].endswith("Z")
    shown = await (
        await api.client.get(f"/api/v1/machines/{machine['system_id']}", headers=api.viewer)
    ).json()
    assert shown == machine


async def test_default_hostname_comes_from_the_system_id(api: Api) -> None:
    machine = await api.create(MAC)
    assert machine["hostname"] == f"node-{machine['system_id']}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "mac"),
        ({"mac": "zz:zz"}, "mac"),
        ({"mac": 5}, "mac"),
        ({"mac": MAC, "macs": ["nope"]}, "macs"),
        ({"mac": MAC, "macs": [MAC]}, "macs"),
        ({"mac": MAC, "hostname": "-bad-"}, "hostname"),
        ({"mac": MAC, "pool": "Big Pool"}, "pool"),
        ({"mac": MAC, "tags": "gpu"}, "tags"),
        ({"mac": MAC, "tags": ["UPPER"]}, "tag"),
        ({"mac": MAC, "colour": "red"}, "colour"),
    ],
)
async def test_create_refuses_bad_input_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    resp = await api.client.post("/api/v1/machines", json=body, headers=api.operator)
    assert resp.status == 400, body
    error = await resp.json()
    assert error["error"] == "bad_request" and error["field"] == field
    assert error["message"]


async def test_body_must_be_a_json_object(api: Api) -> None:
    for raw in (b"{not json", b"[1,2]", b'"x"'):
        resp = await api.client.post("/api/v1/machines", data=raw, headers=api.operator)
        assert resp.status == 400
        assert "JSON" in (await resp.json())["message"]


async def test_duplicates_conflict(api: Api) -> None:
    first = await api.create(MAC, hostname="n1")
    resp = await api.client.post("/api/v1/machines", json={"mac": MAC}, headers=api.operator)
    assert resp.status == 409
    assert first["system_id"] in (await resp.json())["message"]
    resp = await api.client.post(
        "/api/v1/machines",
        json={"mac": "52:54:00:00:00:09", "hostname": "n1"},
        headers=api.operator,
    )
    assert resp.status == 409 and "n1" in (await resp.json())["message"]
    listed = await (await api.client.get("/api/v1/machines", headers=api.viewer)).json()
    assert listed["total"] == 1  # nothing half-created


async def test_missing_machine_is_404(api: Api) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api.client.request(method, "/api/v1/machines/nosuch", headers=api.admin)
        assert resp.status == 404
        assert (await resp.json())["message"] == "no machine 'nosuch'"


async def test_list_filters_and_pages(api: Api) -> None:
    made = []
    for i in range(25):
        tags = ["even"] if i % 2 == 0 else ["odd"]
        made.append(await api.create(f"52:54:00:00:01:{i:02x}", tags=tags, zone=f"z{i % 3}"))
    seen: list[str] = []
    url = "/api/v1/machines?limit=10"
    while url:
        page = await (await api.client.get(url, headers=api.viewer)).json()
        assert page["total"] == 25
        seen += [m["system_id"] for m in page["items"]]
        url = f"/api/v1/machines?limit=10&after={page['next']}" if page["next"] else ""
    assert seen == [m["system_id"] for m in made]

    even = await (await api.client.get("/api/v1/machines?tag=even", headers=api.viewer)).json()
    assert even["total"] == 13
    odd_z0 = await (
        await api.client.get("/api/v1/machines?not_tag=even&zone=z0", headers=api.viewer)
    ).json()
    assert {m["system_id"] for m in odd_z0["items"]} == {
        m["system_id"] for i, m in enumerate(made) if i % 2 and i % 3 == 0
    }
    by_mac = await (
        await api.client.get("/api/v1/machines?mac=52-54-00-00-01-05", headers=api.viewer)
    ).json()
    assert [m["system_id"] for m in by_mac["items"]] == [made[5]["system_id"]]
    status = await (
        await api.client.get("/api/v1/machines?status=new,ready", headers=api.viewer)
    ).json()
    assert status["total"] == 25


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("status=bogus", "status"),
        ("after=-1", "after"),
        ("mac=12", "mac"),
    ],
)
async def test_list_refuses_bad_queries(api: Api, query: str, field: str) -> None:
    resp = await api.client.get(f"/api/v1/machines?{query}", headers=api.viewer)
    assert resp.status == 400
    assert (await resp.json())["field"] == field


async def test_update(api: Api) -> None:
    machine = await api.create(MAC, tags=["a"])
    url = f"/api/v1/machines/{machine['system_id']}"
    resp = await api.client.patch(
        url, json={"hostname": "renamed", "zone": "rack3", "tags": ["b", "c"]}, headers=api.operator
    )
    assert resp.status == 200
    after = await resp.json()
    assert (after["hostname"], after["zone"], after["tags"]) == ("renamed", "rack3", ["b", "c"])
    assert after["pool"] == "default"
    resp = await api.client.patch(url, json={"hostname": "UPPER CASE"}, headers=api.operator)
    assert resp.status == 400 and (await resp.json())["field"] == "hostname"


async def test_delete(api: Api) -> None:
    machine = await api.create(MAC)
    url = f"/api/v1/machines/{machine['system_id']}"
    assert (await api.client.delete(url, headers=api.operator)).status == 204
    assert (await api.client.get(url, headers=api.viewer)).status == 404
    # Its MAC is free again.
    await api.create(MAC)


async def _act(api: Api, system_id: str, action: str, **body: Any) -> Any:
    resp = await api.client.post(
        f"/api/v1/machines/{system_id}/actions/{action}", json=body, headers=api.operator
    )
    return resp.status, await resp.json()


async def test_actions_follow_the_lifecycle(api: Api) -> None:
    sid = (await api.create(MAC))["system_id"]
    status, body = await _act(api, sid, "lock")
    assert status == 409 and body["error"] == "illegal_action"
    assert body["message"].startswith("cannot lock a machine that is new")
    status, body = await _act(api, sid, "mark-fixed")
    assert status == 409
    status, body = await _act(api, sid, "mark-broken", comment="fan failed")
    assert status == 200 and body["status"] == "broken" and body["previous_status"] == "new"
    status, body = await _act(api, sid, "mark-fixed")
    assert status == 200 and body["status"] == "ready"
    status, body = await _act(api, sid, "set-pool", pool="gpu")
    assert status == 200 and body["pool"] == "gpu"
    status, body = await _act(api, sid, "set-zone", zone="rack-2")
    assert status == 200 and body["zone"] == "rack-2"
    status, body = await _act(api, sid, "tag", add=["x", "y"])
    assert body["tags"] == ["x", "y"]
    status, body = await _act(api, sid, "tag", remove=["x"])
    assert body["tags"] == ["y"]


async def test_action_inputs(api: Api) -> None:
    sid = (await api.create(MAC))["system_id"]
    status, body = await _act(api, sid, "set-pool")
    assert status == 400 and body["field"] == "pool"
    status, body = await _act(api, sid, "tag")
    assert status == 400
    status, body = await _act(api, sid, "fly")
    assert status == 404 and "available actions" in body["message"]
    status, body = await _act(api, sid, "commission")  # not in this edgebox yet
    assert status == 404
    status, body = await _act(api, "nosuch", "lock")
    assert status == 404


async def test_locked_machines_refuse_changes(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a Deployed machine can be locked; deploy arrives later, so set the status directly.
    sid = (await api.create(MAC))["system_id"]

    def deploy(tx):  # type: ignore[no-untyped-def]
        tx.conn.execute("UPDATE machines SET status = 'deployed' WHERE system_id = ?", (sid,))

    await api.ctx.machines._store._db.write(deploy)
    status, body = await _act(api, sid, "lock")
    assert status == 200 and body["locked"] is True
    status, body = await _act(api, sid, "set-pool", pool="x")
    assert status == 409 and "unlock it first" in body["message"]
    resp = await api.client.patch(
        f"/api/v1/machines/{sid}", json={"hostname": "x"}, headers=api.operator
    )
    assert resp.status == 409
    assert (await api.client.delete(f"/api/v1/machines/{sid}", headers=api.operator)).status == 409
    status, body = await _act(api, sid, "unlock")
    assert status == 200 and body["locked"] is False
    assert (await api.client.delete(f"/api/v1/machines/{sid}", headers=api.operator)).status == 204
