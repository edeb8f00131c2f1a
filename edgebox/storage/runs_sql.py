"""SQL for script runs, their results and output: statements and row mapping.

The write helpers run on the writer's connection inside a job; the reader side uses the same
column lists and mappers through aiosqlite.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgebox.domain.enlistment import usable_serial, usable_uuid
from edgebox.domain.hardware import summary_of
from edgebox.domain.script_results import UNFINISHED, ResultStatus
from edgebox.domain.script_runs import (
    PlannedResult,
    RunKind,
    RunState,
    ScriptResult,
    ScriptRun,
)

RUN_COLUMNS = "id, machine_id, kind, state, requested_by, created_at, finished_at"
RESULT_COLUMNS = (
    "id, run_id, machine_id, script_id, script_name, script_version, position, expand, device, "
    "interface, parameters, timeout, parallel, status, reported_status, exit_code, runtime, "
    "results, note, started_at, finished_at, boot"
)
_UNFINISHED = tuple(s.value for s in UNFINISHED)
# Planned results are this far apart, so that a per-device placeholder can be replaced by one
# result per device in its own place in the order.
POSITION_STEP = 1000


def run_from_row(row: Sequence[Any]) -> ScriptRun:
    return ScriptRun(row[0], row[1], RunKind(row[2]), RunState(row[3]), row[4], row[5], row[6])


def result_from_row(row: Sequence[Any]) -> ScriptResult:
    return ScriptResult(
        id=row[0],
        run_id=row[1],
        machine_id=row[2],
        script_id=row[3],
        name=row[4],
        version=row[5],
        position=row[6],
        expand=row[7],
        device=row[8],
        interface=row[9],
        parameters=json.loads(row[10]),
        timeout=row[11],
        parallel=row[12],
        status=ResultStatus(row[13]),
        reported_status=ResultStatus(row[14]) if row[14] else None,
        exit_code=row[15],
        runtime=row[16],
        results=json.loads(row[17]),
        note=row[18],
        started_at=row[19],
        finished_at=row[20],
        boot=row[21],
    )


def load_run(conn: sqlite3.Connection, run_id: int) -> ScriptRun | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM script_runs WHERE id = ?", (run_id,)).fetchone()
    return run_from_row(row) if row else None


def running_runs_of(conn: sqlite3.Connection, machine_id: int) -> list[ScriptRun]:
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM script_runs WHERE machine_id = ? AND state = 'running'",
        (machine_id,),
    )
    return [run_from_row(r) for r in rows]


def load_result(conn: sqlite3.Connection, result_id: int) -> ScriptResult | None:
    row = conn.execute(
        f"SELECT {RESULT_COLUMNS} FROM script_results WHERE id = ?", (result_id,)
    ).fetchone()
    return result_from_row(row) if row else None


def run_results(conn: sqlite3.Connection, run_id: int) -> list[ScriptResult]:
    rows = conn.execute(
        f"SELECT {RESULT_COLUMNS} FROM script_results WHERE run_id = ? ORDER BY position, id",
        (run_id,),
    )
    return [result_from_row(r) for r in rows]


def insert_run(
    conn: sqlite3.Connection, machine_id: int, kind: RunKind, actor: str, now: float
) -> int:
    cursor = conn.execute(
        "INSERT INTO script_runs (machine_id, kind, state, requested_by, created_at) "
        "VALUES (?, ?, 'running', ?, ?)",
        (machine_id, kind.value, actor, now),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def insert_results(
    conn: sqlite3.Connection,
    run_id: int,
    machine_id: int,
    planned: Iterable[PlannedResult],
    *,
    first_position: int,
    now: float,
    step: int,
) -> None:
    rows = []
    for offset, p in enumerate(planned):
        finished = now if p.status not in UNFINISHED else None
        rows.append(
            (
                run_id, machine_id, p.script_id, p.name, p.version, first_position + offset * step,
                p.expand.value if p.expand else "", p.device, p.interface,
                json.dumps(dict(p.parameters)), p.timeout, p.parallel, p.status.value, p.note,
                finished,
            )
        )  # fmt: skip
    conn.executemany(
        "INSERT INTO script_results (run_id, machine_id, script_id, script_name, script_version, "
        "position, expand, device, interface, parameters, timeout, parallel, status, note, "
        "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def set_result(conn: sqlite3.Connection, result_id: int, **columns: Any) -> None:
    names = sorted(columns)
    assignments = ", ".join(f"{name} = ?" for name in names)
    values = [_column_value(columns[name]) for name in names]
    conn.execute(f"UPDATE script_results SET {assignments} WHERE id = ?", (*values, result_id))


def _column_value(value: Any) -> Any:
    if isinstance(value, ResultStatus):
        return value.value
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return value


def close_unfinished(
    conn: sqlite3.Connection,
    run_id: int,
    now: float,
    *,
    running_to: ResultStatus,
    pending_to: ResultStatus,
    note: str,
) -> None:
    """End every result of the run that has not finished (an abort, the watchdog)."""
    for current, target in (("running", running_to), ("pending", pending_to)):
        conn.execute(
            "UPDATE script_results SET status = ?, note = ?, finished_at = ? "
            "WHERE run_id = ? AND status = ?",
            (target.value, note, now, run_id, current),
        )


def finish_run(conn: sqlite3.Connection, run_id: int, state: RunState, now: float) -> None:
    conn.execute(
        "UPDATE script_runs SET state = ?, finished_at = ? WHERE id = ?",
        (state.value, now, run_id),
    )


def unfinished_count(conn: sqlite3.Connection, run_id: int) -> int:
    row = conn.execute(
        f"SELECT count(*) FROM script_results WHERE run_id = ? AND status IN "
        f"({','.join('?' * len(_UNFINISHED))})",
        (run_id, *_UNFINISHED),
    ).fetchone()
    return int(row[0])


def store_output(
    conn: sqlite3.Connection, result_id: int, stream: str, data: bytes, size: int
) -> None:
    conn.execute(
        "INSERT INTO script_output (result_id, stream, data, size) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (result_id, stream) DO UPDATE SET data = excluded.data, size = excluded.size",
        (result_id, stream, data, size),
    )


def load_inventory(conn: sqlite3.Connection, machine_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT data FROM machine_inventory WHERE machine_id = ?", (machine_id,)
    ).fetchone()
    return json.loads(row[0]) if row else None


def store_inventory(
    conn: sqlite3.Connection, machine_id: int, inventory: Mapping[str, Any], now: float
) -> None:
    """Replace the machine's inventory with the commissioned one. The identity columns that
    enlistment matched by are kept; an empty one is filled from the new inventory."""
    system = inventory.get("system") or {}
    uuid = usable_uuid(system.get("uuid")) if isinstance(system, Mapping) else ""
    serial = usable_serial(system.get("serial")) if isinstance(system, Mapping) else ""
    summary = json.dumps(summary_of(inventory).as_dict())
    conn.execute(
        "INSERT INTO machine_inventory (machine_id, smbios_uuid, serial, data, summary, "
        "updated_at, commissioned_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (machine_id) DO "
        "UPDATE SET "
        "smbios_uuid = CASE WHEN smbios_uuid = '' THEN excluded.smbios_uuid ELSE smbios_uuid END, "
        "serial = CASE WHEN serial = '' THEN excluded.serial ELSE serial END, "
        "data = excluded.data, summary = excluded.summary, updated_at = excluded.updated_at, "
        "commissioned_at = excluded.commissioned_at",
        (machine_id, uuid, serial, json.dumps(dict(inventory)), summary, now, now),
    )
