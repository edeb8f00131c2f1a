"""The event log: read by cursor, or follow it live over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import event_json
from edgebox.api.request_input import MAX_ID, query_int
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import CURSOR, INT, STR, ref, whole
from edgebox.domain.auth import Permission
from edgebox.services.event_bus import Ended, Lagging, Subscription
from edgebox.services.event_service import EventService

log = logging.getLogger(__name__)

BACKLOG_BATCH = 500
REVOKED = b"the API token was revoked; reconnect with a valid token"
MAX_LIMIT = 1000


async def list_events(request: web.Request) -> web.Response:
    after = query_int(request, "after", 0, 0, MAX_ID)
    limit = query_int(request, "limit", 100, 1, MAX_LIMIT)
    ctx = context(request)
    events = await ctx.events.after(after, limit, request.query.get("machine"))
    last = events[-1].seq if events else await ctx.events.last_seq()
    return web.json_response({"items": [event_json(e) for e in events], "last_seq": last})


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Backlog after `after` first, then live events; one JSON event per text message.

    The subscription starts before the backlog is read, and live events at or below the last
    seq already sent are skipped: nothing committed in between is lost or sent twice. Revoking
    the caller's token ends the stream at once (close code 1008, policy violation).
    """
    after = query_int(request, "after", 0, 0, MAX_ID)
    machine = request.query.get("machine")
    ctx = context(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    if not ws.can_prepare(request).ok:
        raise ApiError(
            426,
            "upgrade_required",
            "this is a WebSocket endpoint: connect with 'Upgrade: websocket' "
            "(GET /api/v1/events reads the same log by cursor)",
        )
    revoked = asyncio.Event()
    with (
        ctx.events.subscribe() as sub,
        ctx.auth.revocation_watch(principal(request).token_id, lambda: _revoke(revoked, sub)),
    ):
        await ws.prepare(request)
        await _follow(ws, sub, events=ctx.events, after=after, machine=machine, revoked=revoked)
    return ws


def _revoke(revoked: asyncio.Event, sub: Subscription) -> None:
    revoked.set()
    sub.end()


async def _follow(
    ws: web.WebSocketResponse,
    sub: Subscription,
    *,
    events: EventService,
    after: int,
    machine: str | None,
    revoked: asyncio.Event,
) -> None:
    sent = await _send_backlog(ws, events, after, machine, revoked)
    # One task per stream reads the client's side, so that its close ends the stream; it is
    # awaited below, never left behind.
    reader = asyncio.create_task(_drain_client(ws, sub))
    try:
        while not ws.closed:
            try:
                event = await sub.next()
            except Ended:  # the client left, edgebox stops, or the token was revoked
                if revoked.is_set():
                    await ws.close(code=1008, message=REVOKED)
                break
            except Lagging:
                await ws.close(code=1013, message=b"too far behind; reconnect with after=seq")
                break
            if event.seq <= sent or (machine is not None and event.machine != machine):
                continue
            await ws.send_json(event_json(event))
            sent = event.seq
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()


async def _send_backlog(
    ws: web.WebSocketResponse,
    events: EventService,
    after: int,
    machine: str | None,
    revoked: asyncio.Event,
) -> int:
    """Send the events after `after`, in batches; the last seq sent. Stops early when the
    token is revoked (the subscription has ended by then: the live loop closes the stream)."""
    sent = after
    while not revoked.is_set():
        batch = await events.after(sent, BACKLOG_BATCH, machine)
        for event in batch:
            if revoked.is_set():
                break
            await ws.send_json(event_json(event))
            sent = event.seq
        if len(batch) < BACKLOG_BATCH:
            break
    return sent


async def _drain_client(ws: web.WebSocketResponse, sub: Subscription) -> None:
    """Read (and ignore) what the client sends, so a close from its side ends the stream."""
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    finally:
        sub.end()


_CURSOR = Param("after", CURSOR, "return events with a larger sequence number (default 0)")
_MACHINE = Param("machine", STR, "only events of this machine (system id)")

ROUTES = [
    Route(
        "GET",
        "/events",
        list_events,
        Permission.READ,
        "Read the event log after a sequence number",
        "events",
        params=[
            _CURSOR,
            _MACHINE,
            Param("limit", whole(1, MAX_LIMIT), "at most this many (1-1000, default 100)"),
        ],
        responses={
            200: {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": ref("Event")},
                    "last_seq": INT,
                },
            }
        },
    ),
    Route(
        "GET",
        "/events/stream",
        stream_events,
        Permission.READ,
        "Follow the event log over a WebSocket: backlog after `after`, then live",
        "events",
        params=[_CURSOR, _MACHINE],
        responses={101: None, 426: ref("Error")},
    ),
]
