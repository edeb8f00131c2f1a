"""The boot timeline of a MAC: DHCP → loader → script → kernel → initrd → agent."""

from __future__ import annotations

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.json_shapes import event_json, iso
from edgebox.api.request_input import bad, query_mac
from edgebox.api.routing import Param, Route
from edgebox.api.schemas import MAC, STR, ref
from edgebox.domain.auth import Permission


async def timeline(request: web.Request) -> web.Response:
    mac = query_mac(request)
    if mac is None:
        raise bad("mac", "this parameter is required")
    events = await context(request).events.boot_events(mac)
    start = events[0].time if events else None
    steps = [
        {
            "step": e.data.get("step", e.type.removeprefix("boot.")),
            "detail": e.data.get("detail", e.data.get("file", "")),
            "time": iso(e.time),
            "seconds": round(e.time - start, 3) if start is not None else 0.0,
            "seq": e.seq,
        }
        for e in events
    ]
    return web.json_response(
        {"mac": mac, "steps": steps, "events": [event_json(e) for e in events]}
    )


ROUTES = [
    Route(
        "GET",
        "/boot/timeline",
        timeline,
        Permission.READ,
        "A MAC's boot steps in order, with seconds from the first",
        "boot",
        params=[Param("mac", MAC, "the booting NIC's MAC", required=True)],
        responses={
            200: {
                "type": "object",
                "properties": {
                    "mac": STR,
                    "steps": {"type": "array", "items": {"type": "object"}},
                    "events": {"type": "array", "items": ref("Event")},
                },
            }
        },
    ),
]
