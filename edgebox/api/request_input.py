"""Reading request bodies, query strings and path ids, with errors that name the field.

Everything here is input from whoever holds a token, so it is read within limits
(`edgebox.domain.input_limits`): integers are ASCII digits within a range (never more than
SQLite holds), a JSON body nests at most 64 levels and holds only finite numbers, and a field
given as `null` is refused unless the document says it may be null — a `null` must never
quietly mean "the default" (`{"role": null}` once made an admin's token).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Any, Final, TypeVar

from aiohttp import web

from edgebox.api.errors import ApiError
from edgebox.domain.identifiers import parse_mac
from edgebox.domain.input_limits import (
    SQLITE_MAX_INT,
    JsonInputError,
    decode_json,
    parse_whole_number,
)

E = TypeVar("E", bound=enum.Enum)
MAX_ID: Final = SQLITE_MAX_INT  # ids and cursors are SQLite integers


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_request", f"{field}: {message}", field)


async def json_object(request: web.Request, allowed: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with only `allowed` keys. An empty body is `{}`."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = decode_json(raw)
    except JsonInputError as exc:
        raise ApiError(400, "bad_request", f"the request body is {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise bad(unknown[0], f"unknown field (known fields: {known})")
    return body


def opt_str(body: dict[str, Any], field: str) -> str | None:
    """The string `field`, None if absent; `null` is refused like any other non-string."""
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, str):
        raise bad(field, f"expected a string, got {_kind(value)}")
    return value


def req_str(body: dict[str, Any], field: str) -> str:
    value = opt_str(body, field)
    if value is None:
        raise bad(field, "this field is required")
    return value


def opt_str_list(body: dict[str, Any], field: str) -> list[str] | None:
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(field, f"expected a list of strings, got {_kind(value)}")
    return list(value)


def opt_object(body: dict[str, Any], field: str) -> dict[str, Any] | None:
    """The JSON object `field`, None if absent; `null` is refused."""
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, dict):
        raise bad(field, f"expected an object, got {_kind(value)}")
    return value


def whole_number(field: str, text: str, low: int = 0, high: int = MAX_ID) -> int:
    """A path or query integer: ASCII digits only, from `low` to `high`."""
    try:
        return parse_whole_number(text, low, high)
    except ValueError as exc:
        raise bad(field, str(exc)) from None


def path_id(request: web.Request, name: str, low: int = 1) -> int:
    """The integer id `name` of the path (1 to 2^63-1 unless `low` says otherwise)."""
    return whole_number(name, request.match_info[name], low)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    return whole_number(name, text, low, high)


def query_list(request: web.Request, name: str) -> list[str]:
    """A repeatable parameter; each occurrence may also hold a comma-separated list."""
    values: list[str] = []
    for item in request.query.getall(name, []):
        values.extend(part.strip() for part in item.split(",") if part.strip())
    return values


def query_enums(request: web.Request, name: str, kind: type[E]) -> list[E]:
    """A repeatable parameter whose values must be members of the string enum `kind`."""
    values = []
    texts = [part.strip() for item in request.query.getall(name, []) for part in item.split(",")]
    for text in texts:
        try:
            values.append(kind(text))
        except ValueError:
            known = ", ".join(str(member.value) for member in kind)
            raise bad(name, f"unknown {name} {text[:64]!r} (known: {known})") from None
    return values


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    text = request.query.get(name)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise bad(name, f"expected true or false, got {text[:64]!r}")


def query_mac(request: web.Request, name: str = "mac") -> str | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return parse_mac(text)
    except ValueError as exc:
        raise bad(name, str(exc)) from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    names = {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), f"a {type(value).__name__}")
