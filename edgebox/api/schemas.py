"""JSON Schemas of the API's objects, for the OpenAPI document."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from edgebox.domain.auth import Role
from edgebox.domain.identifiers import (
    HOSTNAME_PATTERN,
    MAC_MAX_LENGTH,
    MAC_PATTERN,
    NAME_PATTERN,
)
from edgebox.domain.input_limits import SQLITE_MAX_INT
from edgebox.domain.lifecycle import Status

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
STR_LIST: dict[str, Any] = {"type": "array", "items": STR}

# What the server enforces on input, stated where the document describes it.
ID: dict[str, Any] = {"type": "integer", "format": "int64", "minimum": 1, "maximum": SQLITE_MAX_INT}
CURSOR: dict[str, Any] = {
    "type": "integer",
    "format": "int64",
    "minimum": 0,
    "maximum": SQLITE_MAX_INT,
}
NAME: dict[str, Any] = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "description": "lowercase letters, digits, '.', '_' and '-'; at most 63 characters",
}
NAME_LIST: dict[str, Any] = {"type": "array", "items": NAME}
HOSTNAME: dict[str, Any] = {
    "type": "string",
    "pattern": HOSTNAME_PATTERN,
    "description": "one DNS label: letters, digits and inner hyphens, 1-63 characters",
}
MAC: dict[str, Any] = {
    "type": "string",
    "pattern": MAC_PATTERN,
    "maxLength": MAC_MAX_LENGTH,
    "description": "aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff",
}
NON_BLANK: dict[str, Any] = {"type": "string", "pattern": r"\S"}


def whole(low: int, high: int, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


def enum_of(values: Iterable[str], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return schema


def repeated(item: dict[str, Any]) -> dict[str, Any]:
    """A repeatable query parameter (`?status=new&status=ready`; a comma also separates)."""
    return {"type": "array", "items": item}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "total": INT,
            "next": nullable(STR),
        },
        "required": ["items", "total", "next"],
    }


STATUS = {"type": "string", "enum": [s.value for s in Status]}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "properties": {"error": STR, "message": STR, "field": STR},
        "required": ["error", "message"],
    },
    "Interface": {
        "type": "object",
        "properties": {"mac": STR, "name": STR, "boot": BOOL},
        "required": ["mac", "name", "boot"],
    },
    "Machine": {
        "type": "object",
        "properties": {
            "system_id": STR,
            "hostname": STR,
            "status": STATUS,
            "previous_status": nullable(STATUS),
            "arch": STR,
            "pool": STR,
            "zone": STR,
            "owner": nullable(STR),
            "locked": BOOL,
            "power_state": {"type": "string", "enum": ["unknown", "on", "off", "error"]},
            "tags": STR_LIST,
            "interfaces": {"type": "array", "items": ref("Interface")},
            "hardware": {"allOf": [ref("HardwareSummary")], "nullable": True},
            "created_at": TIME,
            "updated_at": TIME,
            "status_changed_at": TIME,
        },
        "required": ["system_id", "hostname", "status", "tags", "interfaces"],
    },
    "HardwareSummary": {
        "type": "object",
        "description": "From the machine's last inventory; a field is null where it says nothing",
        "properties": {
            "cores": nullable(INT),
            "threads": nullable(INT),
            "memory_mib": nullable(INT),
            "storage_bytes": nullable(INT),
            "disks": nullable(INT),
            "gpus": nullable(INT),
            "arch": nullable(STR),
        },
    },
    "Event": {
        "type": "object",
        "properties": {
            "seq": INT,
            "time": TIME,
            "type": STR,
            "level": {"type": "string", "enum": ["debug", "info", "warning", "error"]},
            "machine": nullable(STR),
            "message": STR,
            "data": {"type": "object"},
        },
        "required": ["seq", "time", "type", "level", "message", "data"],
    },
    "Token": {
        "type": "object",
        "properties": {
            "id": INT,
            "name": STR,
            "user": STR,
            "role": {"type": "string", "enum": [r.value for r in Role]},
            "prefix": STR,
            "created_at": TIME,
            "last_used_at": nullable(TIME),
            "revoked_at": nullable(TIME),
            "token": {"type": "string", "description": "the secret; only in the create reply"},
        },
        "required": ["id", "name", "user", "role", "prefix"],
    },
    "Lease": {
        "type": "object",
        "properties": {
            "ip": STR,
            "mac": STR,
            "client_id": nullable(STR),
            "subnet": STR,
            "state": {"type": "string", "enum": ["bound", "released", "expired", "declined"]},
            "hostname": STR,
            "expires": TIME,
        },
        "required": ["ip", "mac", "subnet", "state"],
    },
    "Site": {
        "type": "object",
        "properties": {"site_id": STR, "name": STR, "created_at": TIME, "version": STR},
        "required": ["site_id", "name", "version"],
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": STR,
            "version": STR,
            "site_id": STR,
            "site_name": STR,
            "storage": {
                "type": "string",
                "description": "ok, or failing: why writes fail now and what to do about it",
            },
        },
        "required": ["status", "version", "storage"],
    },
}


def schema_of_settings(cls: type[Any]) -> dict[str, Any]:
    """The JSON Schema of a settings dataclass, as `edgebox.domain.settings.parse_section`
    checks it: known keys only, required ones, enums of Literal fields, numeric bounds from
    each field's metadata. Written from the same dataclass, so the two cannot drift."""
    hints = typing.get_type_hints(cls)
    properties = {f.name: _schema_of_field(hints[f.name], f) for f in dataclasses.fields(cls)}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [f.name for f in dataclasses.fields(cls) if f.metadata.get("required")]
    if required:
        schema["required"] = required
    return schema


def _schema_of_field(hint: Any, spec: dataclasses.Field[Any]) -> dict[str, Any]:
    if dataclasses.is_dataclass(hint):
        return schema_of_settings(typing.cast(type[Any], hint))
    if typing.get_origin(hint) is tuple:
        return {"type": "array", "items": _schema_of_field(typing.get_args(hint)[0], spec)}
    if typing.get_origin(hint) is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    if hint is bool:
        return dict(BOOL)
    if hint in (int, float):
        schema: dict[str, Any] = {"type": "integer" if hint is int else "number"}
        for bound, key in (("min", "minimum"), ("max", "maximum")):
            if spec.metadata.get(bound) is not None:
                schema[key] = spec.metadata[bound]
        return schema
    return dict(STR)
