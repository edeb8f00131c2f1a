"""Errors are JSON everywhere; the OpenAPI document is valid and matches the routes."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from edgebox.api import machines
from tests.unit.api.conftest import Api


async def test_unknown_path_is_json_404(api: Api) -> None:
    resp = await api.client.get("/api/v1/nothing", headers=api.admin)
    assert resp.status == 404
    assert await resp.json() == {
        "error": "not_found",
        "message": "no such endpoint: GET /api/v1/nothing",
    }


async def test_wrong_method_is_json_405(api: Api) -> None:
    resp = await api.client.put("/api/v1/machines", headers=api.admin)
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"


async def test_too_large_body_is_json_413(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/machines", data=b"x" * (2 * 1024 * 1024), headers=api.operator
    )
    assert resp.status == 413
    assert (await resp.json())["error"] == "too_large"


async def test_internal_errors_hide_the_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.ctx.machines, "query", explode)
    resp = await api.client.get("/api/v1/machines", headers=api.viewer)
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == "internal"
    assert "secret" not in body["message"] and "Traceback" not in body["message"]
    ref = body["message"].rsplit("ref=", 1)[1]
    assert any(ref in r.getMessage() for r in caplog.records)


async def test_openapi_is_valid_and_matches_the_routes(api: Api) -> None:
    resp = await api.client.get("/api/v1/openapi.json", headers=api.viewer)
    doc = await resp.json()
    validate(doc)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = {
        (r.method, r.resource.canonical)
        for r in api.client.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert documented == served
    assert doc["paths"]["/api/v1/health"]["get"]["security"] == []
    actions = doc["paths"]["/api/v1/machines/{system_id}/actions/{action}"]["post"]
    enum = actions["parameters"][1]["schema"]["enum"]
    assert enum == [a.value for a in machines.AVAILABLE_ACTIONS]
