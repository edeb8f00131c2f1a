"""The event log: every change writes one, read by cursor and followed live."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType

from edgebox.domain.models import NewEvent
from tests.unit.api.conftest import Api

MAC = "52:54:00:12:34:56"


async def _events(api: Api, query: str = "") -> dict:  # type: ignore[type-arg]
    resp = await api.client.get(f"/api/v1/events?{query}", headers=api.viewer)
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def test_every_change_is_an_event(api: Api) -> None:
    start = (await _events(api))["last_seq"]
    sid = (await api.create(MAC))["system_id"]
    await api.client.post(
        f"/api/v1/machines/{sid}/actions/mark-broken", json={"comment": "psu"}, headers=api.operator
    )
    await api.client.patch(f"/api/v1/machines/{sid}", json={"zone": "r1"}, headers=api.operator)
    await api.client.delete(f"/api/v1/machines/{sid}", headers=api.operator)
    got = (await _events(api, f"after={start}"))["items"]
    assert [e["type"] for e in got] == [
        "machine.created",
        "machine.status",
        "machine.updated",
        "machine.deleted",
    ]
    assert all(e["machine"] == sid for e in got)
    status = got[1]
    assert status["data"] == {
        "user": "olga",
        "action": "mark-broken",
        "from": "new",
        "to": "broken",
        "comment": "psu",
    }
    assert "new -> broken" in status["message"]
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs) and seqs[0] > start


async def test_refused_actions_write_nothing(api: Api) -> None:
    sid = (await api.create(MAC))["system_id"]
    before = (await _events(api))["last_seq"]
    resp = await api.client.post(f"/api/v1/machines/{sid}/actions/lock", headers=api.operator)
    assert resp.status == 409
    assert (await _events(api))["last_seq"] == before


async def test_cursor_paging_and_machine_filter(api: Api) -> None:
    a = (await api.create(MAC))["system_id"]
    await api.create("52:54:00:00:00:02")
    page = await _events(api, "limit=1")
    assert len(page["items"]) == 1 and page["last_seq"] == page["items"][0]["seq"]
    rest = await _events(api, f"after={page['last_seq']}")
    assert all(e["seq"] > page["last_seq"] for e in rest["items"])
    only_a = await _events(api, f"machine={a}")
    assert [e["machine"] for e in only_a["items"]] == [a]


async def test_stream_sends_backlog_then_live(api: Api) -> None:
    await api.create(MAC)
    async with api.client.ws_connect("/api/v1/events/stream?after=0", headers=api.viewer) as ws:
        backlog = []
        while True:
            event = await asyncio.wait_for(ws.receive_json(), 5)
            backlog.append(event)
            if event["type"] == "machine.created":
                break
        await api.create("52:54:00:00:00:02")
        live = await asyncio.wait_for(ws.receive_json(), 5)
        assert live["type"] == "machine.created"
        assert live["data"]["macs"] == ["52:54:00:00:00:02"]
        assert live["seq"] > backlog[-1]["seq"]
        seqs = [e["seq"] for e in backlog]
        assert seqs == sorted(seqs)


async def test_stream_needs_a_token(api: Api) -> None:
    resp = await api.client.get("/api/v1/events/stream")
    assert resp.status == 401


async def test_stream_ends_cleanly_at_shutdown(api: Api) -> None:
    last = (await _events(api))["last_seq"]
    url = f"/api/v1/events/stream?after={last}"
    async with api.client.ws_connect(url, headers=api.viewer) as ws:
        await asyncio.sleep(0.05)
        api.ctx.events.end_streams()
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def test_boot_timeline_needs_a_mac_and_lists_steps(api: Api) -> None:
    resp = await api.client.get("/api/v1/boot/timeline", headers=api.viewer)
    assert resp.status == 400 and (await resp.json())["field"] == "mac"
    for step in ("dhcp", "script", "kernel"):
        await api.ctx.events.append(
            NewEvent(f"boot.{step}", step, data={"mac": MAC, "step": step, "detail": step})
        )
    await api.ctx.events.append(NewEvent("boot.dhcp", "other", data={"mac": "52:54:00:99:99:99"}))
    body = await (
        await api.client.get(f"/api/v1/boot/timeline?mac={MAC}", headers=api.viewer)
    ).json()
    assert [s["step"] for s in body["steps"]] == ["dhcp", "script", "kernel"]
    assert body["steps"][0]["seconds"] == 0.0


async def _token_id(api: Api, user: str) -> int:
    resp = await api.client.get("/api/v1/tokens", headers=api.admin)
    return next(int(t["id"]) for t in (await resp.json())["items"] if t["user"] == user)


async def test_revoking_a_token_closes_its_streams_at_once(api: Api) -> None:
    last = (await _events(api))["last_seq"]
    url = f"/api/v1/events/stream?after={last}"
    async with (
        api.client.ws_connect(url, headers=api.viewer) as revoked,
        api.client.ws_connect(url, headers=api.operator) as other,
    ):
        await api.create(MAC)  # both streams are live
        assert (await asyncio.wait_for(revoked.receive_json(), 5))["type"] == "machine.created"
        assert (await asyncio.wait_for(other.receive_json(), 5))["type"] == "machine.created"
        resp = await api.client.delete(
            f"/api/v1/tokens/{await _token_id(api, 'vic')}", headers=api.admin
        )
        assert resp.status == 200
        # The revocation's own event may still arrive (it commits with the revocation); then
        # the stream closes, saying why.
        msg = await asyncio.wait_for(revoked.receive(), 2)
        if msg.type is WSMsgType.TEXT:
            assert msg.json()["type"] == "token.revoked"
            msg = await asyncio.wait_for(revoked.receive(), 2)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1008
        assert msg.extra == "the API token was revoked; reconnect with a valid token"
        # The other token's stream goes on.
        assert (await asyncio.wait_for(other.receive_json(), 5))["type"] == "token.revoked"
        await api.create("52:54:00:00:00:02")
        live = await asyncio.wait_for(other.receive_json(), 5)
        assert live["data"]["macs"] == ["52:54:00:00:00:02"]
        assert (await api.client.get(url, headers=api.viewer)).status == 401


async def test_a_token_revoked_just_before_its_stream_starts_watching_is_closed_too(
    api: Api,
) -> None:
    token_id = await _token_id(api, "vic")
    await api.ctx.auth.revoke(token_id)
    calls: list[str] = []
    with api.ctx.auth.revocation_watch(token_id, lambda: calls.append("revoked")):
        assert calls == ["revoked"]
    # Once the block has ended, a later revoke of another token calls nothing here.
    await api.ctx.auth.revoke(await _token_id(api, "olga"))
    assert calls == ["revoked"]
