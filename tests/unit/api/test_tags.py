"""The /tags endpoints through the real app, over a real database."""

from __future__ import annotations

import json
from typing import Any

from edgebox.storage.database import Database
from edgebox.storage.writer import Tx
from tests.unit.api.conftest import Api

GPU_BOX = {"gpus": [{"vendor": "nvidia"}], "memory": {"total_mib": 524288}}


async def store_inventory(db: Database, system_id: str, inventory: dict[str, Any]) -> None:
    def job(tx: Tx) -> None:
        tx.conn.execute(
            "INSERT INTO machine_inventory (machine_id, data, updated_at) "
            "SELECT id, ?, ? FROM machines WHERE system_id = ?",
            (json.dumps(inventory), tx.now, system_id),
        )

    await db.write(job)


async def post_tag(api: Api, **body: object) -> Any:
    return await api.client.post("/api/v1/tags", json=body, headers=api.operator)


async def test_create_list_show_an_automatic_tag(api: Api, db: Database) -> None:
    gpu = await api.create("52:54:00:00:00:01")
    plain = await api.create("52:54:00:00:00:02")
    await store_inventory(db, str(gpu["system_id"]), GPU_BOX)
    await store_inventory(db, str(plain["system_id"]), {})

    resp = await post_tag(api, name="gpu", definition='gpu.vendor == "nvidia"', comment="A100s")
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == "/api/v1/tags/gpu"
    created = await resp.json()
    assert created == {
        "name": "gpu",
        "definition": 'gpu.vendor == "nvidia"',
        "comment": "A100s",
        "automatic": True,
        "machine_count": 1,
    }
    listed = await (await api.client.get("/api/v1/tags", headers=api.viewer)).json()
    assert listed == {"items": [created]}
    shown = await (await api.client.get("/api/v1/tags/gpu", headers=api.viewer)).json()
    assert shown == created
    machines = await (await api.client.get("/api/v1/tags/gpu/machines", headers=api.viewer)).json()
    assert [m["system_id"] for m in machines["items"]] == [gpu["system_id"]]
    assert machines["total"] == 1 and machines["next"] is None
    # The machine list filters by tag as well.
    filtered = await (await api.client.get("/api/v1/machines?tag=gpu", headers=api.viewer)).json()
    assert [m["system_id"] for m in filtered["items"]] == [gpu["system_id"]]
    assert filtered["items"][0]["tags"] == ["gpu"]


async def test_a_bad_definition_is_a_400_naming_the_column(api: Api) -> None:
    resp = await post_tag(api, name="big", definition="memory_gib >= ")
    assert resp.status == 400
    assert await resp.json() == {
        "error": "bad_request",
        "message": "definition: column 15: expected a value after '>=', found end of expression",
        "field": "definition",
    }
    resp = await api.client.patch(
        "/api/v1/tags/big", json={"definition": "true"}, headers=api.operator
    )
    assert resp.status == 404


async def test_update_re_evaluates_and_delete_untags(api: Api, db: Database) -> None:
    machine = await api.create("52:54:00:00:00:01")
    await store_inventory(db, str(machine["system_id"]), GPU_BOX)
    assert (await post_tag(api, name="big", definition="memory_gib >= 1024")).status == 201
    resp = await api.client.patch(
        "/api/v1/tags/big", json={"definition": "memory_gib >= 512"}, headers=api.operator
    )
    assert resp.status == 200
    assert (await resp.json())["machine_count"] == 1
    path = f"/api/v1/machines/{machine['system_id']}"
    assert (await (await api.client.get(path, headers=api.viewer)).json())["tags"] == ["big"]

    resp = await api.client.delete("/api/v1/tags/big", headers=api.operator)
    assert resp.status == 204
    assert (await (await api.client.get(path, headers=api.viewer)).json())["tags"] == []
    assert (await api.client.get("/api/v1/tags/big", headers=api.viewer)).status == 404
    assert (await api.client.get("/api/v1/tags/big/machines", headers=api.viewer)).status == 404


async def test_tagging_a_machine_by_hand_with_an_automatic_tag_is_a_409(api: Api) -> None:
    machine = await api.create("52:54:00:00:00:01")
    assert (await post_tag(api, name="gpu", definition="any(gpu)")).status == 201
    resp = await api.client.post(
        f"/api/v1/machines/{machine['system_id']}/actions/tag",
        json={"add": ["gpu"]},
        headers=api.operator,
    )
    assert resp.status == 409
    body = await resp.json()
    assert body["error"] == "conflict"
    assert body["message"].startswith("tag 'gpu' is automatic")


async def test_roles_viewers_read_operators_write(api: Api) -> None:
    resp = await api.client.post("/api/v1/tags", json={"name": "x"}, headers=api.viewer)
    assert resp.status == 403
    assert (await api.client.get("/api/v1/tags")).status == 401
    assert (await post_tag(api, name="x")).status == 201
    for method, body in (("PATCH", {"comment": "c"}), ("DELETE", None)):
        resp = await api.client.request(method, "/api/v1/tags/x", json=body, headers=api.viewer)
        assert resp.status == 403
    resp = await api.client.patch("/api/v1/tags/x", json={"comment": "c"}, headers=api.admin)
    assert resp.status == 200 and (await resp.json())["comment"] == "c"


async def test_bad_bodies_name_the_field(api: Api) -> None:
    for body, field in (
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "Big"}, "tag"),
        ({"name": "x", "definition": 7}, "definition"),
        ({"name": "x", "colour": "red"}, "colour"),
    ):
        resp = await api.client.post("/api/v1/tags", json=body, headers=api.operator)
        assert resp.status == 400, body
        assert (await resp.json())["field"] == field
    assert (await post_tag(api, name="x")).status == 201
    assert (await post_tag(api, name="x")).status == 409
    resp = await api.client.patch("/api/v1/tags/x", json={}, headers=api.operator)
    assert resp.status == 400
    resp = await api.client.get("/api/v1/tags/x/machines?after=abc", headers=api.viewer)
    assert resp.status == 400


async def test_tag_machines_pages_by_cursor(api: Api, db: Database) -> None:
    ids = []
    for i in range(3):
        machine = await api.create(f"52:54:00:00:00:0{i + 1}")
        await store_inventory(db, str(machine["system_id"]), {})
        ids.append(machine["system_id"])
    assert (await post_tag(api, name="all", definition="true")).status == 201
    page = await (
        await api.client.get("/api/v1/tags/all/machines?limit=2", headers=api.viewer)
    ).json()
    assert [m["system_id"] for m in page["items"]] == ids[:2] and page["total"] == 3
    rest = await (
        await api.client.get(
            f"/api/v1/tags/all/machines?limit=2&after={page['next']}", headers=api.viewer
        )
    ).json()
    assert [m["system_id"] for m in rest["items"]] == ids[2:] and rest["next"] is None
