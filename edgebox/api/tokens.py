"""API tokens: list, create (the secret is shown once), revoke. Admins only."""

from __future__ import annotations

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.json_shapes import token_json
from edgebox.api.request_input import bad, json_object, opt_str, path_id, query_bool, req_str
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import BOOL, ID, NAME, NON_BLANK, enum_of, ref
from edgebox.domain.auth import Permission, Role
from edgebox.domain.identifiers import check_name


async def list_tokens(request: web.Request) -> web.Response:
    revoked = query_bool(request, "revoked")
    tokens = await context(request).auth.list_tokens(include_revoked=revoked)
    return web.json_response({"items": [token_json(t) for t in tokens]})


async def create_token(request: web.Request) -> web.Response:
    body = await json_object(request, {"name", "user", "role"})
    name = req_str(body, "name").strip()
    if not name:
        raise bad("name", "a token needs a name that says what it is for")
    user = opt_str(body, "user")
    if user is None:
        user = principal(request).user
    try:
        check_name(user, "user")
    except ValueError as exc:
        raise bad("user", str(exc)) from None
    role_text = opt_str(body, "role")
    role = None
    if role_text is not None:
        try:
            role = Role(role_text)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise bad("role", f"unknown role {role_text!r} (known: {known})") from None
    info, secret = await context(request).auth.create_token(name, user, role)
    return web.json_response({**token_json(info), "token": secret}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    info = await context(request).auth.revoke(path_id(request, "token_id"))
    return web.json_response(token_json(info))


ROUTES = [
    Route(
        "GET",
        "/tokens",
        list_tokens,
        Permission.ADMIN,
        "List API tokens (never their secrets)",
        "auth",
        params=[Param("revoked", BOOL, "true to include revoked tokens (default false)")],
        responses={
            200: {
                "type": "object",
                "properties": {"items": {"type": "array", "items": ref("Token")}},
            }
        },
    ),
    Route(
        "POST",
        "/tokens",
        create_token,
        Permission.ADMIN,
        "Create a token for a user (created with `role` if new); the secret is in this reply only",
        "auth",
        body={
            "type": "object",
            "properties": {
                "name": {**NON_BLANK, "description": "what the token is for"},
                "user": {**NAME, "description": "the user (default: the caller)"},
                "role": enum_of((r.value for r in Role), "the role of a user made for this token"),
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        responses={201: ref("Token")},
    ),
    Route(
        "DELETE",
        "/tokens/{token_id}",
        revoke_token,
        Permission.ADMIN,
        "Revoke a token",
        "auth",
        params=[Param("token_id", ID, "the token's id", where="path", required=True)],
        responses={200: ref("Token")},
    ),
]
