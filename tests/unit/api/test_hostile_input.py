"""Bad input is a 400 that names the field, never a 500: integers in queries and paths, JSON
nested too deep or holding what JSON cannot, `null` where the document does not allow it, a
method the path does not take (405 with Allow), a WebSocket endpoint asked over plain HTTP."""

from __future__ import annotations

import pytest

from edgebox.domain.input_limits import SQLITE_MAX_INT
from tests.unit.api.conftest import Api

WHOLE = f"expected a whole number from 0 to {SQLITE_MAX_INT}"


@pytest.mark.parametrize(
    ("path", "field", "message"),
    [
        ("/machines?after=%C2%B3", "after", f"after: {WHOLE}, got '³'"),
        (f"/machines?after={2**63}", "after", f"after: {WHOLE}, got '{2**63}'"),
        (
            "/machines?after=" + "9" * 4301,
            "after",
            f"after: {WHOLE}, got '99999999999999999999'... (4301 characters)",
        ),
        ("/machines?after=-1", "after", f"after: {WHOLE}, got '-1'"),
        ("/tags/x/machines?after=%C2%B3", "after", None),  # the tag is looked up first: 404
        ("/events?after=%D9%A1%D9%A2", "after", f"after: {WHOLE}, got '١٢'"),
        ("/events?limit=0", "limit", "limit: expected a whole number from 1 to 1000, got '0'"),
        ("/events?limit=%2B5", "limit", "limit: expected a whole number from 1 to 1000, got '+5'"),
        ("/tokens?revoked=maybe", "revoked", "revoked: expected true or false, got 'maybe'"),
        ("/machines?status=ready,", "status", None),
    ],
)
async def test_query_integers_are_strict(
    api: Api, path: str, field: str, message: str | None
) -> None:
    resp = await api.client.get("/api/v1" + path, headers=api.admin)
    body = await resp.json()
    if path.startswith("/tags/"):
        assert resp.status == 404, body
        return
    assert resp.status == 400, body
    assert body["error"] == "bad_request" and body["field"] == field
    if message is not None:
        assert body["message"] == message


async def test_the_largest_cursor_is_an_empty_page(api: Api) -> None:
    await api.create("52:54:00:00:00:01")
    resp = await api.client.get(f"/api/v1/machines?after={SQLITE_MAX_INT}", headers=api.viewer)
    assert resp.status == 200
    assert await resp.json() == {"items": [], "total": 1, "next": None}


@pytest.mark.parametrize("text", ["abc", "0", str(2**63), "9" * 5000, "%C2%B3"])
async def test_path_ids_are_strict(api: Api, text: str) -> None:
    resp = await api.client.delete(f"/api/v1/tokens/{text}", headers=api.admin)
    body = await resp.json()
    assert resp.status == 400 and body["field"] == "token_id", body
    assert body["message"].startswith(f"token_id: expected a whole number from 1 to {2**63 - 1}")
    assert len(body["message"]) < 200


def nested(depth: int) -> bytes:
    return b'{"mac": "52:54:00:00:00:01", "tags":' + b"[" * depth + b"]" * depth + b"}"


async def test_json_nested_too_deep_is_a_400(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/machines", data=b"[" * 1000 + b"]" * 1000, headers=api.operator
    )
    assert resp.status == 400
    assert await resp.json() == {
        "error": "bad_request",
        "message": "the request body is nested deeper than 64 levels",
    }
    resp = await api.client.post("/api/v1/machines", data=nested(64), headers=api.operator)
    assert resp.status == 400
    assert await resp.json() == {
        "error": "bad_request",
        "message": "the request body is nested deeper than 64 levels",
    }
    # 63 levels of list inside the object: read, then refused for what it says.
    resp = await api.client.post("/api/v1/machines", data=nested(63), headers=api.operator)
    body = await resp.json()
    assert resp.status == 400 and body["field"] == "tags", body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"mac": "52:54:00:00:00:01", "arch": NaN}', "NaN is not a JSON number"),
        (b'{"mac": "52:54:00:00:00:01", "arch": 1e999}', "the number '1e999' is too large"),
        (b'{"count": 18446744073709551616}', "the integer '18446744073709551616' is outside"),
        (b"\xff", "not UTF-8 text (byte 0)"),
    ],
)
async def test_json_numbers_must_be_json_and_fit(api: Api, raw: bytes, message: str) -> None:
    resp = await api.client.post("/api/v1/machines", data=raw, headers=api.operator)
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "bad_request"
    assert body["message"].startswith("the request body is ") and message in body["message"]


async def test_a_null_role_makes_no_token(api: Api) -> None:
    before = await (await api.client.get("/api/v1/tokens", headers=api.admin)).json()
    for body in ({"name": "x", "role": None}, {"name": "x", "user": None}):
        resp = await api.client.post("/api/v1/tokens", json=body, headers=api.admin)
        field = next(iter(set(body) - {"name"}))
        assert resp.status == 400
        assert await resp.json() == {
            "error": "bad_request",
            "message": f"{field}: expected a string, got null",
            "field": field,
        }
    resp = await api.client.post(
        "/api/v1/tokens", json={"name": "x", "user": ""}, headers=api.admin
    )
    body = await resp.json()
    assert resp.status == 400 and body["field"] == "user"
    after = await (await api.client.get("/api/v1/tokens", headers=api.admin)).json()
    assert after == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/machines", {"mac": "52:54:00:00:00:01", "hostname": None}, "hostname"),
        ("/machines", {"mac": "52:54:00:00:00:01", "tags": None}, "tags"),
        ("/tags", {"name": "gpu", "comment": None}, "comment"),
    ],
)
async def test_null_is_refused_where_the_document_does_not_allow_it(
    api: Api, path: str, body: dict[str, object], field: str
) -> None:
    resp = await api.client.post("/api/v1" + path, json=body, headers=api.operator)
    answer = await resp.json()
    assert resp.status == 400 and answer["field"] == field, answer
    assert answer["message"].endswith("got null")


async def test_a_wrong_method_says_which_are_allowed(api: Api) -> None:
    resp = await api.client.put("/api/v1/machines", headers=api.admin)
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) >= {"GET", "POST"}
    body = await resp.json()
    assert body["error"] == "method_not_allowed"
    assert body["message"].startswith("PUT is not allowed on /api/v1/machines (allowed: ")


async def test_the_event_stream_over_plain_http_is_a_426(api: Api) -> None:
    resp = await api.client.get("/api/v1/events/stream", headers=api.viewer)
    assert resp.status == 426
    assert resp.headers["Upgrade"] == "websocket"
    body = await resp.json()
    assert body["error"] == "upgrade_required" and "WebSocket" in body["message"]
