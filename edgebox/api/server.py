"""The API application: routes, error middleware, OpenAPI, and the live-stream shutdown."""

from __future__ import annotations

from aiohttp import web

from edgebox.api import (
    boot,
    commissioning,
    deploy,
    dhcp,
    events,
    images,
    machines,
    power,
    scripts,
    system,
    tags,
    tokens,
)
from edgebox.api.context import CONTEXT, ApiContext
from edgebox.api.errors import error_middleware
from edgebox.api.openapi import build_openapi
from edgebox.api.routing import Route, register

ROUTES: list[Route] = [
    *system.ROUTES,
    *machines.ROUTES,
    *commissioning.ROUTES,
    *scripts.ROUTES,
    *tags.ROUTES,
    *events.ROUTES,
    *tokens.ROUTES,
    *dhcp.ROUTES,
    *boot.ROUTES,
    *power.ROUTES,
    *images.ROUTES,
    *deploy.ROUTES,
]
MAX_BODY = 1024 * 1024
# aiohttp refuses a request line past 8 KiB with a plain-text 400 before any handler runs; a
# query of a few hundred ids (GET /power/ops) comes near that. At 64 KiB, a long query reaches
# the API and is refused as JSON that says which parameter is too long.
MAX_REQUEST_LINE = 64 * 1024  # the API's runner (app.py) takes it


def build_api_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[CONTEXT] = ctx
    app[system.OPENAPI] = build_openapi(ROUTES, ctx.version)
    register(app, ROUTES)
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    app[CONTEXT].events.end_streams()
