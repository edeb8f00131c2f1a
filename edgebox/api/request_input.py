"""Reading request bodies and query strings, with errors that name the field."""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from typing import Any, TypeVar

from aiohttp import web

from edgebox.api.errors import ApiError
from edgebox.domain.identifiers import parse_mac

E = TypeVar("E", bound=enum.Enum)


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_request", f"{field}: {message}", field)


async def json_object(request: web.Request, allowed: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with only `allowed` keys. An empty body is `{}`."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise bad(unknown[0], f"unknown field (known fields: {known})")
    return body


def opt_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(field, f"expected a string, got {_kind(value)}")
    return value


def req_str(body: dict[str, Any], field: str) -> str:
    value = opt_str(body, field)
    if value is None:
        raise bad(field, "this field is required")
    return value


def opt_str_list(body: dict[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(field, f"expected a list of strings, got {_kind(value)}")
    return list(value)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad(name, f"expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise bad(name, f"expected an integer from {low} to {high}, got {value}")
    return value


def query_list(request: web.Request, name: str) -> list[str]:
    """A repeatable parameter; each occurrence may also hold a comma-separated list."""
    values: list[str] = []
    for item in request.query.getall(name, []):
        values.extend(part.strip() for part in item.split(",") if part.strip())
    return values


def query_enums(request: web.Request, name: str, kind: type[E]) -> list[E]:
    """A repeatable parameter whose values must be members of the string enum `kind`."""
    values = []
    for text in query_list(request, name):
        try:
            values.append(kind(text))
        except ValueError:
            known = ", ".join(str(member.value) for member in kind)
            raise bad(name, f"unknown {name} {text!r} (known: {known})") from None
    return values


def query_mac(request: web.Request, name: str = "mac") -> str | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return parse_mac(text)
    except ValueError as exc:
        raise bad(name, str(exc)) from None


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", int: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")
