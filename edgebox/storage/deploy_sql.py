"""SQL for deployments, their logs and rollouts: statements and row mapping (migration 0007).

The write helpers run on the writer's connection inside a job; the reader side uses the same
column list and mapper through aiosqlite. A deployment row is read with its machine's
system_id (a JOIN), which the agent and cloud-init calls need and which never changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain.deployment import (
    DeployKind,
    Deployment,
    DeployState,
    DeployStep,
    EraseMode,
)
from edgebox.domain.rollout import RolloutState

COLUMNS = (
    "d.id, d.machine_id, m.system_id, d.kind, d.state, d.step, d.requested_by, d.created_at, "
    "d.rollout_id, d.wave, d.allocated_here, d.image_id, d.image_name, d.image_sha256, "
    "d.image_size, d.compression, d.user_data, d.ssh_keys, d.hostname, d.disk, d.boot_mac, "
    "d.erase, d.agent_step, d.done, d.total, d.result, d.error, d.failed_step, d.power_op_id, "
    "d.comment, d.started_at, d.finished_at, d.seed_secret"
)
SELECT = f"SELECT {COLUMNS} FROM deployments d JOIN machines m ON m.id = d.machine_id"
OPEN = "d.state IN ('queued', 'running')"

# What a change may set, by column; the values are bound parameters.
SETTABLE = frozenset(
    {
        "state", "step", "disk", "agent_step", "done", "total", "result", "error",
        "failed_step", "power_op_id", "started_at", "finished_at",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rollout:
    id: int
    kind: DeployKind
    wave_size: int
    max_failures: int
    state: RolloutState
    reason: str
    requested_by: str
    created_at: float
    finished_at: float | None


ROLLOUT_COLUMNS = (
    "id, kind, wave_size, max_failures, state, reason, requested_by, created_at, finished_at"
)


def deployment_from_row(row: Sequence[Any]) -> Deployment:
    return Deployment(
        id=row[0],
        machine_id=row[1],
        system_id=row[2],
        kind=DeployKind(row[3]),
        state=DeployState(row[4]),
        step=DeployStep(row[5]),
        requested_by=row[6],
        created_at=row[7],
        rollout_id=row[8],
        wave=row[9],
        allocated_here=bool(row[10]),
        image_id=row[11],
        image_name=row[12],
        image_sha256=row[13],
        image_size=row[14],
        compression=row[15],
        user_data=row[16],
        ssh_keys=tuple(json.loads(row[17])),
        hostname=row[18],
        disk=row[19],
        boot_mac=row[20],
        erase=EraseMode(row[21]),
        agent_step=row[22],
        done=row[23],
        total=row[24],
        result=json.loads(row[25]) or None,
        error=row[26],
        failed_step=row[27],
        power_op_id=row[28],
        comment=row[29],
        started_at=row[30],
        finished_at=row[31],
        seed_secret=row[32],
    )


def rollout_from_row(row: Sequence[Any]) -> Rollout:
    return Rollout(
        row[0], DeployKind(row[1]), row[2], row[3], RolloutState(row[4]), row[5], row[6],
        row[7], row[8],
    )  # fmt: skip


def load(conn: sqlite3.Connection, deployment_id: int) -> Deployment | None:
    row = conn.execute(f"{SELECT} WHERE d.id = ?", (deployment_id,)).fetchone()
    return deployment_from_row(row) if row else None


def open_of(conn: sqlite3.Connection, machine_id: int) -> list[Deployment]:
    rows = conn.execute(f"{SELECT} WHERE d.machine_id = ? AND {OPEN}", (machine_id,)).fetchall()
    return [deployment_from_row(r) for r in rows]


def insert(conn: sqlite3.Connection, d: Deployment, now: float) -> int:
    """Insert `d` (its id and system_id are ignored); return the new id."""
    cursor = conn.execute(
        "INSERT INTO deployments (machine_id, kind, state, step, rollout_id, wave, "
        "allocated_here, image_id, image_name, image_sha256, image_size, compression, "
        "user_data, ssh_keys, hostname, disk, boot_mac, erase, error, requested_by, comment, "
        "created_at, started_at, finished_at, updated_at, seed_secret) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            d.machine_id, d.kind.value, d.state.value, d.step.value, d.rollout_id, d.wave,
            int(d.allocated_here), d.image_id, d.image_name, d.image_sha256, d.image_size,
            d.compression, d.user_data, json.dumps(list(d.ssh_keys)), d.hostname, d.disk,
            d.boot_mac, d.erase.value, d.error, d.requested_by, d.comment, now, d.started_at,
            d.finished_at, now, d.seed_secret,
        ),
    )  # fmt: skip
    new_id = cursor.lastrowid
    assert new_id is not None
    return new_id


def update(
    conn: sqlite3.Connection, deployment_id: int, fields: Mapping[str, Any], now: float
) -> None:
    unknown = set(fields) - SETTABLE
    if unknown:
        raise ValueError(f"deployment columns that cannot be set: {sorted(unknown)}")
    sets = ["updated_at = ?"]
    params: list[Any] = [now]
    for column, value in fields.items():
        sets.append(f"{column} = ?")
        params.append(_column_value(value))
    conn.execute(f"UPDATE deployments SET {', '.join(sets)} WHERE id = ?", (*params, deployment_id))


def _column_value(value: Any) -> Any:
    if isinstance(value, DeployState | DeployStep):
        return value.value
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return value


def set_owner(conn: sqlite3.Connection, machine_id: int, owner: str | None) -> None:
    conn.execute("UPDATE machines SET owner = ? WHERE id = ?", (owner, machine_id))


def store_log(conn: sqlite3.Connection, deployment_id: int, data: bytes, size: int) -> None:
    conn.execute(
        "INSERT INTO deployment_logs (deployment_id, data, size) VALUES (?, ?, ?) "
        "ON CONFLICT (deployment_id) DO UPDATE SET data = excluded.data, size = excluded.size",
        (deployment_id, data, size),
    )


def insert_rollout(
    conn: sqlite3.Connection, *, kind: DeployKind, wave_size: int, max_failures: int, by: str,
    now: float,
) -> int:  # fmt: skip
    cursor = conn.execute(
        "INSERT INTO rollouts (kind, wave_size, max_failures, state, requested_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (kind.value, wave_size, max_failures, RolloutState.RUNNING.value, by, now),
    )
    new_id = cursor.lastrowid
    assert new_id is not None
    return new_id


def load_rollout(conn: sqlite3.Connection, rollout_id: int) -> Rollout | None:
    row = conn.execute(
        f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,)
    ).fetchone()
    return rollout_from_row(row) if row else None
