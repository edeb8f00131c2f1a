"""The /tags endpoints: list, create, show, update and delete tags; the machines with a tag.

A tag with a `definition` is automatic: the server decides which machines carry it from their
hardware inventory (see edgebox/domain/tag_expression.py for the language). A definition that
does not parse is a 400 whose message starts with the column: "definition: column 12: ...".
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import machine_json
from edgebox.api.machines import AFTER, PAGE_SIZE, page_cursor
from edgebox.api.request_input import json_object, opt_str, query_int, req_str
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import BOOL, INT, NAME, STR, page_of
from edgebox.domain.auth import Permission
from edgebox.domain.models import MachineFilter
from edgebox.services.tag_service import MAX_COMMENT, TagService
from edgebox.storage.tag_store import Tag

MAX_PAGE = 1000

TAG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": STR,
        "definition": {
            "type": "string",
            "description": "an expression over the hardware inventory; empty for a manual tag",
        },
        "comment": STR,
        "automatic": BOOL,
        "machine_count": INT,
    },
    "required": ["name", "definition", "comment", "automatic", "machine_count"],
}


def tag_json(tag: Tag) -> dict[str, Any]:
    return {
        "name": tag.name,
        "definition": tag.definition,
        "comment": tag.comment,
        "automatic": tag.automatic,
        "machine_count": tag.machine_count,
    }


def _tags(request: web.Request) -> TagService:
    service = context(request).tags
    if service is None:
        raise ApiError(404, "not_found", "tags are not available on this edgebox")
    return service


async def list_tags(request: web.Request) -> web.Response:
    tags = await _tags(request).list_tags()
    return web.json_response({"items": [tag_json(t) for t in tags]})


async def create_tag(request: web.Request) -> web.Response:
    body = await json_object(request, {"name", "definition", "comment"})
    tag = await _tags(request).create(
        req_str(body, "name"),
        principal(request).user,
        definition=opt_str(body, "definition") or "",
        comment=opt_str(body, "comment") or "",
    )
    location = f"/api/v1/tags/{tag.name}"
    return web.json_response(tag_json(tag), status=201, headers={"Location": location})


async def get_tag(request: web.Request) -> web.Response:
    tag = await _tags(request).get(request.match_info["name"])
    return web.json_response(tag_json(tag))


async def update_tag(request: web.Request) -> web.Response:
    body = await json_object(request, {"definition", "comment"})
    tag = await _tags(request).update(
        request.match_info["name"],
        principal(request).user,
        definition=opt_str(body, "definition"),
        comment=opt_str(body, "comment"),
    )
    return web.json_response(tag_json(tag))


async def delete_tag(request: web.Request) -> web.Response:
    await _tags(request).delete(request.match_info["name"], principal(request).user)
    return web.Response(status=204)


async def tag_machines(request: web.Request) -> web.Response:
    tag = await _tags(request).get(request.match_info["name"])
    limit = query_int(request, "limit", 100, 1, MAX_PAGE)
    after = page_cursor(request)
    page = await context(request).machines.query(MachineFilter(tags=(tag.name,)), limit, after)
    return web.json_response(
        {
            "items": [machine_json(m) for m in page.items],
            "total": page.total,
            "next": str(page.next_after) if page.next_after is not None else None,
        }
    )


_NAME = Param("name", STR, "the tag's name", where="path", required=True)
_TAG = {200: TAG_SCHEMA}
_FIELDS = {
    "definition": TAG_SCHEMA["properties"]["definition"],
    "comment": {**STR, "maxLength": MAX_COMMENT},
}

ROUTES = [
    Route(
        "GET",
        "/tags",
        list_tags,
        Permission.READ,
        "List tags with their definitions and machine counts",
        "tags",
        responses={
            200: {
                "type": "object",
                "properties": {"items": {"type": "array", "items": TAG_SCHEMA}},
                "required": ["items"],
            }
        },
    ),
    Route(
        "POST",
        "/tags",
        create_tag,
        Permission.OPERATE,
        "Create a tag; with a definition it is automatic and evaluated over every machine",
        "tags",
        body={
            "type": "object",
            "properties": {"name": NAME, **_FIELDS},
            "required": ["name"],
            "additionalProperties": False,
        },
        responses={201: TAG_SCHEMA},
    ),
    Route(
        "GET",
        "/tags/{name}",
        get_tag,
        Permission.READ,
        "Show a tag",
        "tags",
        params=[_NAME],
        responses=_TAG,
    ),
    Route(
        "PATCH",
        "/tags/{name}",
        update_tag,
        Permission.OPERATE,
        "Change a tag's definition (re-evaluated over every machine) or comment",
        "tags",
        params=[_NAME],
        body={
            "type": "object",
            "properties": _FIELDS,
            "minProperties": 1,
            "additionalProperties": False,
        },
        responses=_TAG,
    ),
    Route(
        "DELETE",
        "/tags/{name}",
        delete_tag,
        Permission.OPERATE,
        "Delete a tag; the machines that carried it lose it",
        "tags",
        params=[_NAME],
        responses={204: None},
    ),
    Route(
        "GET",
        "/tags/{name}/machines",
        tag_machines,
        Permission.READ,
        "The machines that carry a tag, paged by cursor",
        "tags",
        params=[_NAME, PAGE_SIZE, AFTER],
        responses={200: page_of("Machine")},
    ),
]
