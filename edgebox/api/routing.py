"""Routes as data: each carries its handler, the permission it needs, and its OpenAPI facts.

The same list registers the aiohttp routes and writes the OpenAPI document, so the two cannot
drift apart. Authentication happens here: a route with a permission gets a wrapper that checks
the bearer token and the caller's role before the handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.domain.auth import Permission, Principal, Role, allows

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = Mapping[str, Any]
PRINCIPAL = web.RequestKey("edgebox_principal", Principal)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: Schema
    description: str
    where: str = "query"  # or "path"
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # relative to /api/v1, with {name} path parameters
    handler: Handler
    permission: Permission | None  # None: no token needed
    summary: str
    tag: str
    params: Sequence[Param] = ()
    body: Schema | None = None  # a JSON body
    text_body: Schema | None = None  # also taken as text/plain
    responses: Mapping[int, Schema | None] = field(default_factory=dict)
    # Why the permission is what it is, for the 403 of a caller whose role is short of it.
    why: str = ""


API_PREFIX = "/api/v1"
_ROLE_FOR = {
    Permission.READ: Role.VIEWER.value,
    Permission.OPERATE: Role.OPERATOR.value,
    Permission.ADMIN: Role.ADMIN.value,
}


def register(app: web.Application, routes: Sequence[Route]) -> None:
    for route in routes:
        handler = route.handler if route.permission is None else _guarded(route)
        app.router.add_route(route.method, API_PREFIX + route.path, handler)


def principal(request: web.Request) -> Principal:
    who = request.get(PRINCIPAL)
    assert isinstance(who, Principal), "principal() used on a public route"
    return who


def _guarded(route: Route) -> Handler:
    needed = route.permission
    assert needed is not None

    async def handler(request: web.Request) -> web.StreamResponse:
        who = await _authenticate(request)
        if not allows(who.role, needed):
            why = f" ({route.why})" if route.why else ""
            raise ApiError(
                403,
                "forbidden",
                f"user {who.user} has role {who.role.value}, which may not "
                f"{route.method} {API_PREFIX}{route.path}: it needs role {_ROLE_FOR[needed]}"
                f"{why}; ask an admin to do it, or for a token with that role",
            )
        request[PRINCIPAL] = who
        return await route.handler(request)

    return handler


async def _authenticate(request: web.Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint needs an API token: send 'Authorization: Bearer <token>'",
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'")
    who = await context(request).auth.authenticate(token.strip())
    if who is None:
        raise ApiError(401, "unauthorized", "the API token is not valid or has been revoked")
    return who
