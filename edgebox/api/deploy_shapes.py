"""How deploys, releases and rollouts look on the wire, and their schemas for OpenAPI."""

from __future__ import annotations

from typing import Any

from edgebox.api.json_shapes import iso
from edgebox.api.schemas import BOOL, HOSTNAME, INT, STR, TIME, nullable
from edgebox.domain.deployment import (
    MAX_SSH_KEY,
    MAX_SSH_KEYS,
    MAX_USER_DATA,
    SSH_KEY_PATTERN,
    Deployment,
    EraseMode,
)
from edgebox.services.deploy_service import Bulk, BulkItem
from edgebox.services.deploy_views import DeploymentView, RolloutView


def bulk_json(bulk: Bulk) -> dict[str, Any]:
    accepted = sum(1 for i in bulk.items if i.accepted)
    return {
        "rollout": bulk.rollout_id,
        "items": [_item_json(i) for i in bulk.items],
        "accepted": accepted,
        "refused": len(bulk.items) - accepted,
    }


def _item_json(item: BulkItem) -> dict[str, Any]:
    return {
        "system_id": item.system_id,
        "hostname": item.hostname,
        "accepted": item.accepted,
        "wave": item.wave,
        "reason": item.reason,
    }


def deployment_json(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "system_id": d.system_id,
        "kind": d.kind.value,
        "state": d.state.value,
        "step": d.step.value,
        "image": {"id": d.image_id, "name": d.image_name} if d.image_id else None,
        "hostname": d.hostname,
        "disk": d.disk,
        "erase": d.erase.value if d.erase is not EraseMode.NONE or d.kind.value == "release"
        else None,
        "progress": {"step": d.agent_step, "done": d.done, "total": d.total},
        "error": d.error,
        "failed_step": d.failed_step,
        "result": dict(d.result) if d.result else None,
        "user_data_size": len(d.user_data.encode("utf-8", "surrogatepass")),
        "ssh_keys": len(d.ssh_keys),
        "requested_by": d.requested_by,
        "comment": d.comment,
        "rollout": d.rollout_id,
        "wave": d.wave,
        "created_at": iso(d.created_at),
        "started_at": iso(d.started_at),
        "finished_at": iso(d.finished_at),
    }  # fmt: skip


def deployment_view_json(view: DeploymentView) -> dict[str, Any]:
    return {
        **deployment_json(view.deployment),
        "status": view.status.value,
        "log": view.log.decode("utf-8", "replace"),
        "log_size": view.log_size,
    }


def rollout_json(view: RolloutView) -> dict[str, Any]:
    r = view.rollout
    counts: dict[str, int] = {}
    for item in view.items:
        counts[item.deployment.state.value] = counts.get(item.deployment.state.value, 0) + 1
    return {
        "id": r.id,
        "kind": r.kind.value,
        "state": r.state.value,
        "reason": r.reason,
        "wave_size": r.wave_size,
        "max_failures": r.max_failures,
        "requested_by": r.requested_by,
        "created_at": iso(r.created_at),
        "finished_at": iso(r.finished_at),
        "counts": counts,
        "items": [
            {
                "system_id": i.deployment.system_id,
                "hostname": i.hostname,
                "status": i.status.value,
                "state": i.deployment.state.value,
                "step": i.deployment.step.value,
                "wave": i.deployment.wave,
                "progress": {
                    "step": i.deployment.agent_step,
                    "done": i.deployment.done,
                    "total": i.deployment.total,
                },
                "error": i.deployment.error,
                "failed_step": i.deployment.failed_step,
            }
            for i in view.items
        ],
    }


# -- routes and their schemas -------------------------------------------------------------

STATES = {
    "type": "string",
    "enum": ["queued", "running", "succeeded", "failed", "aborted", "skipped"],
}
PROGRESS = {"type": "object", "properties": {"step": STR, "done": INT, "total": INT}}
DEPLOY_OPTIONS: dict[str, Any] = {
    "image": {**STR, "pattern": r"\S", "description": "deploy: the image's name or id"},
    "user_data": {**STR, "maxLength": MAX_USER_DATA, "pattern": "^[^\\u0000]*$",
                  "description": "deploy: cloud-init user-data (#cloud-config ...), text"},
    "ssh_keys": {"type": "array", "maxItems": MAX_SSH_KEYS,
                 "items": {**STR, "maxLength": MAX_SSH_KEY, "pattern": SSH_KEY_PATTERN},
                 "description": "deploy: public keys for the deployed OS, one line each"},
    "hostname": {**HOSTNAME, "description": "deploy: the machine's new host name"},
    "disk": {**STR, "pattern": "^$|^[a-z][a-z0-9]{0,31}$",
             "description": "deploy: the target disk (kernel name; empty: the agent picks)"},
    "erase": {"type": "string", "enum": [m.value for m in EraseMode],
              "description": "release: how to erase the disks (default none)"},
}  # fmt: skip
BULK_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rollout": nullable(INT),
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "system_id": STR,
                    "hostname": STR,
                    "accepted": BOOL,
                    "wave": INT,
                    "reason": STR,
                },
            },
        },
        "accepted": INT,
        "refused": INT,
    },
    "required": ["rollout", "items", "accepted", "refused"],
}
DEPLOYMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": INT, "system_id": STR, "kind": {"type": "string", "enum": ["deploy", "release"]},
        "state": STATES, "step": STR, "status": STR,
        "image": nullable({"type": "object", "properties": {"id": STR, "name": STR}}),
        "hostname": STR, "disk": STR, "erase": nullable(STR), "progress": PROGRESS,
        "error": STR, "failed_step": STR, "result": nullable({"type": "object"}),
        "user_data_size": INT, "ssh_keys": INT, "requested_by": STR, "comment": STR,
        "rollout": nullable(INT), "wave": INT, "created_at": TIME,
        "started_at": nullable(TIME), "finished_at": nullable(TIME), "log": STR, "log_size": INT,
    },
    "required": ["id", "system_id", "kind", "state", "step", "status"],
}  # fmt: skip
ROLLOUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": INT, "kind": STR, "state": {"type": "string", "enum": ["running", "stopped", "done"]},
        "reason": STR, "wave_size": INT, "max_failures": INT, "requested_by": STR,
        "created_at": TIME, "finished_at": nullable(TIME),
        "counts": {"type": "object", "additionalProperties": INT},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "system_id": STR, "hostname": STR, "status": STR, "state": STATES,
                    "step": STR, "wave": INT, "progress": PROGRESS, "error": STR,
                    "failed_step": STR,
                },
            },
        },
    },
    "required": ["id", "kind", "state", "counts", "items"],
}  # fmt: skip
