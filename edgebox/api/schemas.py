"""JSON Schemas of the API's objects, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from edgebox.domain.auth import Role
from edgebox.domain.lifecycle import Status

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
STR_LIST: dict[str, Any] = {"type": "array", "items": STR}


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
