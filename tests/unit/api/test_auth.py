"""Every route but /health needs a valid token, and each role gets what it may do."""

from __future__ import annotations

import hashlib
import re

import pytest

from edgebox.api.server import ROUTES
from tests.unit.api.conftest import Api, bearer

SAMPLES = {
    "system_id": "abc234",
    "action": "lock",
    "token_id": "1",
    "cidr": "10.0.0.0/24",
    "ip": "10.0.0.5",
    "name": "gpu",
    "result_id": "1",
    "ref": "debian-12",
    "rollout_id": "1",
}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: SAMPLES[m.group(1)], path)


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.permission is not None], ids=lambda r: f"{r.method} {r.path}"
)
async def test_every_protected_route_refuses_without_a_token(api: Api, route) -> None:  # type: ignore[no-untyped-def]
    url = "/api/v1" + _concrete(route.path)
    for headers in ({}, bearer("ebx_not-a-real-token"), {"Authorization": "Basic abc"}):
        resp = await api.client.request(route.method, url, headers=headers)
        assert resp.status == 401, (route.path, headers)
        body = await resp.json()
        assert body["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_health_is_public(api: Api) -> None:
    resp = await api.client.get("/api/v1/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["site_name"] == "test-site"


async def test_viewer_reads_but_may_not_act(api: Api) -> None:
    assert (await api.client.get("/api/v1/machines", headers=api.viewer)).status == 200
    resp = await api.client.post(
        "/api/v1/machines", json={"mac": "52:54:00:00:00:01"}, headers=api.viewer
    )
    assert resp.status == 403
    body = await resp.json()
    assert body["error"] == "forbidden" and "viewer" in body["message"]


async def test_operator_acts_but_may_not_manage_tokens(api: Api) -> None:
    await api.create("52:54:00:00:00:01")
    resp = await api.client.get("/api/v1/tokens", headers=api.operator)
    assert resp.status == 403


async def test_token_lifecycle(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/tokens",
        json={"name": "ci", "user": "ci-bot", "role": "operator"},
        headers=api.admin,
    )
    assert resp.status == 201
    created = await resp.json()
    secret = created["token"]
    assert secret.startswith("ebx_") and created["role"] == "operator"
    assert created["prefix"] == secret[:8]

    listed = await (await api.client.get("/api/v1/tokens", headers=api.admin)).json()
    assert all("token" not in t for t in listed["items"])  # secrets are never listed
    assert any(t["id"] == created["id"] for t in listed["items"])

    assert (await api.client.get("/api/v1/machines", headers=bearer(secret))).status == 200
    resp = await api.client.delete(f"/api/v1/tokens/{created['id']}", headers=api.admin)
    assert resp.status == 200 and (await resp.json())["revoked_at"] is not None
    assert (await api.client.get("/api/v1/machines", headers=bearer(secret))).status == 401
    again = await api.client.delete(f"/api/v1/tokens/{created['id']}", headers=api.admin)
    assert again.status == 409


async def test_token_for_existing_user_takes_its_role(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/tokens", json={"name": "x", "user": "olga", "role": "admin"}, headers=api.admin
    )
    assert resp.status == 409
    assert "role operator" in (await resp.json())["message"]
    resp = await api.client.post(
        "/api/v1/tokens", json={"name": "x", "user": "nobody"}, headers=api.admin
    )
    assert resp.status == 404


async def test_token_create_validates(api: Api) -> None:
    for body, field in (
        ({}, "name"),
        ({"name": "x", "role": "root"}, "role"),
        ({"name": "x", "user": "Bad User"}, "user"),
        ({"name": "x", "colour": "red"}, "colour"),
    ):
        resp = await api.client.post("/api/v1/tokens", json=body, headers=api.admin)
        assert resp.status == 400, body
        assert (await resp.json())["field"] == field


async def test_only_hashes_are_stored(api: Api) -> None:
    resp = await api.client.post("/api/v1/tokens", json={"name": "t"}, headers=api.admin)
    secret = (await resp.json())["token"]
    rows = await api.ctx.machines._store._db.fetchall("SELECT token_hash FROM api_tokens")
    assert rows and all(secret not in r[0] for r in rows)
    assert any(r[0] == hashlib.sha256(secret.encode()).hexdigest() for r in rows)
