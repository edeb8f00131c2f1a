"""Health (the one public endpoint), site identity, and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.json_shapes import iso
from edgebox.api.routing import Route
from edgebox.api.schemas import ref
from edgebox.domain.auth import Permission

OPENAPI = web.AppKey("edgebox_openapi", dict)


async def health(request: web.Request) -> web.Response:
    """`status` is liveness: the process serves (a restart would not bring back a full disk).
    `storage` says whether writes succeed: `ok` or `failing: <what to do about it>`."""
    ctx = context(request)
    return web.json_response(
        {
            "status": "ok",
            "version": ctx.version,
            "site_id": ctx.site.site_id,
            "site_name": ctx.site.name,
            "storage": ctx.storage.describe(),
        }
    )


async def site(request: web.Request) -> web.Response:
    ctx = context(request)
    return web.json_response(
        {
            "site_id": ctx.site.site_id,
            "name": ctx.site.name,
            "created_at": iso(ctx.site.created_at),
            "version": ctx.version,
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


ROUTES = [
    Route(
        "GET",
        "/health",
        health,
        None,
        "Liveness; needs no token",
        "system",
        responses={200: ref("Health")},
    ),
    Route(
        "GET",
        "/site",
        site,
        Permission.READ,
        "This site's identity",
        "system",
        responses={200: ref("Site")},
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        Permission.READ,
        "This document",
        "system",
        responses={200: {"type": "object"}},
    ),
]
