"""How records look on the wire: plain JSON objects, times in ISO 8601 UTC."""

from __future__ import annotations

import datetime
from typing import Any

from edgebox.domain.auth import TokenInfo
from edgebox.domain.models import Event, Machine


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def machine_json(m: Machine) -> dict[str, Any]:
    return {
        "system_id": m.system_id,
        "hostname": m.hostname,
        "status": m.status.value,
        "previous_status": m.previous_status.value if m.previous_status else None,
        "arch": m.arch,
        "pool": m.pool,
        "zone": m.zone,
        "owner": m.owner,
        "locked": m.locked,
        "power_state": m.power_state.value,
        "tags": list(m.tags),
        "interfaces": [{"mac": i.mac, "name": i.name, "boot": i.boot} for i in m.interfaces],
        "hardware": m.hardware.as_dict() if m.hardware else None,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "status_changed_at": iso(m.status_changed_at),
    }


def event_json(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": iso(e.time),
        "type": e.type,
        "level": e.level.value,
        "machine": e.machine,
        "message": e.message,
        "data": dict(e.data),
    }


def token_json(t: TokenInfo) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "user": t.user,
        "role": t.role.value,
        "prefix": t.prefix,
        "created_at": iso(t.created_at),
        "last_used_at": iso(t.last_used_at),
        "revoked_at": iso(t.revoked_at),
    }
