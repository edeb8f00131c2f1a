"""Which machines a bulk request means: a list of system ids, a filter, or both.

Bulk endpoints (power, commission, deploy, release) take `"machines": [system ids]` and/or
`"filter": {"status", "pool", "zone", "tag", "not_tag"}`; at least one must be given, so that
a forgotten filter never means "every machine of the site".
"""

from __future__ import annotations

from typing import Any

from edgebox.api.errors import ApiError
from edgebox.api.request_input import bad, opt_str, opt_str_list
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import MachineFilter

FILTER_FIELDS = ("status", "pool", "zone", "tag", "not_tag")
SELECTION_SCHEMA: dict[str, Any] = {
    "machines": {
        "type": "array",
        "items": {"type": "string"},
        "description": "system ids",
    },
    "filter": {
        "type": "object",
        "properties": {
            "status": {
                "type": "array",
                "items": {"type": "string", "enum": [s.value for s in Status]},
            },
            "pool": {"type": "string"},
            "zone": {"type": "string"},
            "tag": {"type": "array", "items": {"type": "string"}},
            "not_tag": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
}
# A bulk body names machines, or gives a filter that is not empty, or both.
SELECTION_RULE: dict[str, Any] = {
    "anyOf": [
        {"required": ["machines"], "properties": {"machines": {"minItems": 1}}},
        {"required": ["filter"], "properties": {"filter": {"minProperties": 1}}},
    ]
}


def selection(body: dict[str, Any]) -> tuple[MachineFilter | None, list[str]]:
    system_ids = opt_str_list(body, "machines") or []
    if "filter" not in body:
        if not system_ids:
            raise bad("machines", "name the machines, or give a filter (e.g. a tag)")
        return None, system_ids
    raw = body["filter"]
    if not isinstance(raw, dict):
        raise bad("filter", "expected an object with status, pool, zone, tag or not_tag")
    unknown = sorted(set(raw) - set(FILTER_FIELDS))
    if unknown:
        raise bad(f"filter.{unknown[0]}", f"unknown field (known: {', '.join(FILTER_FIELDS)})")
    if not raw and not system_ids:
        raise bad("filter", "an empty filter would select every machine; say which ones")
    try:
        return _filter(raw), system_ids
    except ApiError as exc:
        raise bad(f"filter.{exc.field}", exc.message.split(": ", 1)[-1]) from None


def _filter(raw: dict[str, Any]) -> MachineFilter:
    statuses = []
    for text in opt_str_list(raw, "status") or []:
        try:
            statuses.append(Status(text))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise bad("status", f"unknown status {text[:64]!r} (known: {known})") from None
    return MachineFilter(
        status=tuple(statuses),
        pool=opt_str(raw, "pool"),
        zone=opt_str(raw, "zone"),
        tags=tuple(opt_str_list(raw, "tag") or ()),
        not_tags=tuple(opt_str_list(raw, "not_tag") or ()),
    )
