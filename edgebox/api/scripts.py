"""The /scripts endpoints: commissioning, testing and release scripts, every version kept.

Uploading and deleting scripts are for admins: a script runs as root on every machine that is
commissioned or tested, so whoever may upload one may run anything on them. Anyone may read.

A script is uploaded as its own text (`Content-Type: text/plain` or any non-JSON type), or as
JSON `{"content": "..."}`. Its metadata header is validated on upload; a bad header is a 400
whose message names the line and the field ("line 7: timeout: expected seconds or ...").
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import iso
from edgebox.api.request_input import bad, json_object, query_enums, query_int, req_str
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import BOOL, INT, STR, TIME, enum_of, whole
from edgebox.domain.auth import Permission
from edgebox.domain.script_metadata import MetadataError, ScriptType, metadata_to_json
from edgebox.domain.script_runs import StoredScript
from edgebox.services.script_service import ScriptService
from edgebox.services.script_yaml import MAX_SCRIPT_BYTES

MAX_VERSION = 2**31


def _scripts(request: web.Request) -> ScriptService:
    scripts = context(request).scripts
    if scripts is None:
        raise ApiError(503, "unavailable", "scripts are not available in this edgebox")
    return scripts


def script_json(script: StoredScript) -> dict[str, Any]:
    return {
        **metadata_to_json(script.metadata),
        "version": script.version,
        "builtin": script.builtin,
        "sha256": script.sha256,
        "created_at": iso(script.created_at),
        "created_by": script.created_by,
    }


async def list_scripts(request: web.Request) -> web.Response:
    types = query_enums(request, "type", ScriptType)
    if len(types) > 1:
        raise bad("type", "give one type")
    scripts = await _scripts(request).current(types[0] if types else None)
    return web.json_response({"items": [script_json(s) for s in scripts]})


async def upload_script(request: web.Request) -> web.Response:
    if request.content_type == "application/json":
        text = req_str(await json_object(request, {"content"}), "content")
    else:
        raw = await request.read()
        if len(raw) > MAX_SCRIPT_BYTES:
            raise ApiError(413, "too_large", f"a script may be at most {MAX_SCRIPT_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad("content", f"a script must be UTF-8 text (byte {exc.start})") from None
    try:
        script = await _scripts(request).upload(text, principal(request).user)
    except MetadataError as exc:
        raise ApiError(400, "bad_request", str(exc), exc.field) from None
    location = f"/api/v1/scripts/{script.name}"
    return web.json_response(script_json(script), status=201, headers={"Location": location})


async def get_script(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    version = query_int(request, "version", 0, 0, MAX_VERSION)
    service = _scripts(request)
    script, content = await service.get(name, version or None)
    versions = await service.versions(name)
    return web.json_response(
        {
            **script_json(script),
            "content": content,
            "versions": [
                {
                    "version": v.version,
                    "created_at": iso(v.created_at),
                    "created_by": v.created_by,
                    "sha256": v.sha256,
                }
                for v in versions
            ],
        }
    )


async def delete_script(request: web.Request) -> web.Response:
    who = principal(request)
    await _scripts(request).delete(request.match_info["name"], who.user, who.role)
    return web.Response(status=204)


SCRIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": STR,
        "version": INT,
        "type": {"type": "string", "enum": [t.value for t in ScriptType]},
        "title": STR,
        "description": STR,
        "hardware_type": STR,
        "timeout": {**INT, "description": "seconds; 0 = none"},
        "destructive": BOOL,
        "parallel": {"type": "string", "enum": ["disabled", "instance", "any"]},
        "parameters": {"type": "object"},
        "results": {"type": "object"},
        "builtin": BOOL,
        "sha256": STR,
        "created_at": TIME,
        "created_by": STR,
    },
    "required": ["name", "version", "type", "builtin"],
}
_NAME = Param("name", STR, "the script's name", where="path", required=True)
# Why uploading (or deleting) a script is an admin's: what is uploaded runs as root on every
# machine that is commissioned or tested, and deleting one changes what runs.
_AS_ROOT = "scripts run as root on every machine commissioned or tested"

ROUTES = [
    Route(
        "GET",
        "/scripts",
        list_scripts,
        Permission.READ,
        "List the current version of every script",
        "scripts",
        params=[Param("type", enum_of(t.value for t in ScriptType), "only scripts of this type")],
        responses={
            200: {
                "type": "object",
                "properties": {"items": {"type": "array", "items": SCRIPT_SCHEMA}},
            }
        },
    ),
    Route(
        "POST",
        "/scripts",
        upload_script,
        Permission.ADMIN,
        "Upload a script (the text itself, or JSON {content}); a known name gets a new version."
        " Admins only: scripts run as root on every machine commissioned",
        "scripts",
        why=_AS_ROOT,
        body={
            "type": "object",
            "properties": {
                "content": {
                    **STR,
                    "maxLength": MAX_SCRIPT_BYTES,
                    "description": "the script: a shell script with a YAML header "
                    "(docs/commissioning-contract.md); at most 1 MiB of UTF-8",
                }
            },
            "required": ["content"],
            "additionalProperties": False,
        },
        text_body={**STR, "maxLength": MAX_SCRIPT_BYTES, "description": "the script itself"},
        responses={201: SCRIPT_SCHEMA},
    ),
    Route(
        "GET",
        "/scripts/{name}",
        get_script,
        Permission.READ,
        "Show a script with its content and versions",
        "scripts",
        params=[
            _NAME,
            Param("version", whole(0, MAX_VERSION), "a version (default, or 0: the current one)"),
        ],
        responses={
            200: {
                **SCRIPT_SCHEMA,
                "properties": {
                    **SCRIPT_SCHEMA["properties"],
                    "content": STR,
                    "versions": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    ),
    Route(
        "DELETE",
        "/scripts/{name}",
        delete_script,
        Permission.ADMIN,
        "Delete a user's script (every version; results keep theirs). Built-ins cannot be."
        " Admins only",
        "scripts",
        why=_AS_ROOT,
        params=[_NAME],
        responses={204: None},
    ),
]
