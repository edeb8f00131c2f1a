"""The OpenAPI 3.0 document, written from the same route list that aiohttp serves."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from edgebox.api.routing import API_PREFIX, Route
from edgebox.api.schemas import COMPONENTS, ref

_ERRORS = {
    "400": "bad input; `field` names the field",
    "401": "no token, or a token that is not valid",
    "403": "the token's role may not do this",
    "404": "no such object",
    "409": "illegal in the current state, or clashes with existing data",
    "503": "the database cannot take writes now (disk full, I/O error); nothing was stored: "
    "retry after the Retry-After header's seconds",
}
_TOO_LARGE = {"413": "the request body is larger than the server takes (1 MiB)"}


def build_openapi(routes: Sequence[Route], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = API_PREFIX + _plain(route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "edgebox API",
            "version": version,
            "description": "Bare-metal lifecycle: machines, events, tokens. Send "
            "'Authorization: Bearer <token>' on every call but /health.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{_slug(route.path)}",
        "responses": _responses(route),
    }
    if route.params:
        operation["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": dict(p.schema),
            }
            for p in route.params
        ]
    if route.body is not None:
        content = {"application/json": {"schema": dict(route.body)}}
        if route.text_body is not None:
            content["text/plain"] = {"schema": dict(route.text_body)}
        # An absent body is read as {}: it is required only where {} is not enough.
        needs = any(route.body.get(key) for key in ("required", "anyOf", "oneOf"))
        operation["requestBody"] = {"required": needs, "content": content}
    operation["security"] = [] if route.permission is None else [{"bearer": []}]
    return operation


def _responses(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in route.responses.items():
        entry: dict[str, Any] = {"description": "success" if status < 400 else "refused"}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": dict(schema)}}
        responses[str(status)] = entry
    errors = dict(_ERRORS) if route.permission is not None else {}
    if route.body is not None:
        errors.update(_TOO_LARGE)
    for code, text in errors.items():
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return responses


def _plain(path: str) -> str:
    """aiohttp's `{name:regex}` path parameters are `{name}` in OpenAPI."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def _slug(path: str) -> str:
    parts = [p.strip("{}").replace("-", "_") for p in _plain(path).strip("/").split("/")]
    return "_".join(parts)
