"""SQL for machines, their interfaces and tags: statements and row mapping.

The write functions take a `Tx` and run on the writer's thread; the reader side builds the
same SELECTs and runs them through aiosqlite. Both map rows with the same functions.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from edgebox.domain.errors import Conflict
from edgebox.domain.hardware import HardwareSummary
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import (
    Interface,
    Machine,
    MachineChanges,
    MachineFilter,
    NewMachine,
)
from edgebox.domain.power import PowerState
from edgebox.storage import tags_sql

MACHINE_COLUMNS = (
    "id, system_id, hostname, status, previous_status, arch, pool, zone, owner, locked, "
    "power_state, created_at, updated_at, status_changed_at, "
    "(SELECT summary FROM machine_inventory WHERE machine_id = machines.id) AS hardware"
)


def machine_from_row(
    row: sqlite3.Row, tags: Sequence[str], interfaces: Sequence[Interface]
) -> Machine:
    previous = row["previous_status"]
    return Machine(
        id=row["id"],
        system_id=row["system_id"],
        hostname=row["hostname"],
        status=Status(row["status"]),
        previous_status=Status(previous) if previous else None,
        arch=row["arch"],
        pool=row["pool"],
        zone=row["zone"],
        owner=row["owner"],
        locked=bool(row["locked"]),
        power_state=PowerState(row["power_state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status_changed_at=row["status_changed_at"],
        tags=tuple(sorted(tags)),
        interfaces=tuple(interfaces),
        hardware=HardwareSummary.from_dict(json.loads(hw)) if (hw := row["hardware"]) else None,
    )


def related_sql(ids: Sequence[int]) -> tuple[str, str, list[int]]:
    marks = ",".join("?" * len(ids))
    tags = (
        "SELECT mt.machine_id, t.name FROM machine_tags mt JOIN tags t ON t.id = mt.tag_id "
        f"WHERE mt.machine_id IN ({marks})"
    )
    nics = (
        "SELECT machine_id, mac, name, boot FROM interfaces "
        f"WHERE machine_id IN ({marks}) ORDER BY id"
    )
    return tags, nics, list(ids)


def assemble(
    rows: Iterable[sqlite3.Row], tag_rows: Iterable[sqlite3.Row], nic_rows: Iterable[sqlite3.Row]
) -> list[Machine]:
    tags: dict[int, list[str]] = defaultdict(list)
    for machine_id, name in tag_rows:
        tags[machine_id].append(name)
    nics: dict[int, list[Interface]] = defaultdict(list)
    for machine_id, mac, name, boot in nic_rows:
        nics[machine_id].append(Interface(mac, name, bool(boot)))
    return [machine_from_row(r, tags[r["id"]], nics[r["id"]]) for r in rows]


def filter_sql(flt: MachineFilter) -> tuple[str, list[Any]]:
    """WHERE clauses (joined by AND, possibly empty) and their parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if flt.status:
        clauses.append(f"status IN ({','.join('?' * len(flt.status))})")
        params.extend(s.value for s in flt.status)
    for column in ("pool", "zone", "hostname", "owner"):
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.mac is not None:
        clauses.append("id IN (SELECT machine_id FROM interfaces WHERE mac = ?)")
        params.append(flt.mac)
    for tag in flt.tags:
        clauses.append(_HAS_TAG)
        params.append(tag)
    for tag in flt.not_tags:
        clauses.append(f"NOT {_HAS_TAG}")
        params.append(tag)
    return " AND ".join(clauses), params


_HAS_TAG = (
    "EXISTS (SELECT 1 FROM machine_tags mt JOIN tags t ON t.id = mt.tag_id "
    "WHERE mt.machine_id = machines.id AND t.name = ?)"
)


def load_machine(conn: sqlite3.Connection, system_id: str) -> Machine | None:
    row = conn.execute(
        f"SELECT {MACHINE_COLUMNS} FROM machines WHERE system_id = ?", (system_id,)
    ).fetchone()
    if row is None:
        return None
    tags_sql, nics_sql, ids = related_sql([row["id"]])
    return assemble(
        [row], conn.execute(tags_sql, ids).fetchall(), conn.execute(nics_sql, ids).fetchall()
    )[0]


def insert_machine(conn: sqlite3.Connection, new: NewMachine, now: float) -> int:
    _check_unique(conn, new.hostname, [i.mac for i in new.interfaces], exclude_id=None)
    cursor = conn.execute(
        "INSERT INTO machines (system_id, hostname, status, arch, pool, zone, created_at, "
        "updated_at, status_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.system_id,
            new.hostname,
            new.status.value,
            new.arch,
            new.pool,
            new.zone,
            now,
            now,
            now,
        ),
    )
    machine_id = cursor.lastrowid
    assert machine_id is not None
    conn.executemany(
        "INSERT INTO interfaces (machine_id, mac, name, boot) VALUES (?, ?, ?, ?)",
        [(machine_id, i.mac, i.name, int(i.boot)) for i in new.interfaces],
    )
    tags_sql.refuse_automatic(conn, new.tags)
    _set_tags(conn, machine_id, new.tags)
    return machine_id


def update_machine(
    conn: sqlite3.Connection, machine: Machine, changes: MachineChanges, now: float
) -> None:
    sets: list[str] = ["updated_at = ?"]
    params: list[Any] = [now]
    if changes.hostname is not None and changes.hostname != machine.hostname:
        _check_unique(conn, changes.hostname, [], exclude_id=machine.id)
        sets.append("hostname = ?")
        params.append(changes.hostname)
    for column in ("pool", "zone"):
        value = getattr(changes, column)
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    state = changes.lifecycle
    if state is not None:
        sets += ["status = ?", "previous_status = ?", "locked = ?"]
        params += [state.status.value, state.previous_status, int(state.locked)]
        if state.status != machine.status:
            sets.append("status_changed_at = ?")
            params.append(now)
    conn.execute(f"UPDATE machines SET {', '.join(sets)} WHERE id = ?", (*params, machine.id))
    before = set(machine.tags)
    named = set(changes.add_tags) | set(changes.remove_tags) | (set(changes.tags or ()) - before)
    tags_sql.refuse_automatic(conn, named)
    tags = before
    if changes.tags is not None:  # a replacement keeps the automatic tags it does not name
        tags = set(changes.tags) | set(tags_sql.automatic_of(conn, before))
    tags = (tags | set(changes.add_tags)) - set(changes.remove_tags)
    if tags != before:
        conn.execute("DELETE FROM machine_tags WHERE machine_id = ?", (machine.id,))
        _set_tags(conn, machine.id, tuple(tags))


def delete_machine(conn: sqlite3.Connection, machine_id: int) -> None:
    conn.execute("DELETE FROM machines WHERE id = ?", (machine_id,))


def _set_tags(conn: sqlite3.Connection, machine_id: int, tags: Iterable[str]) -> None:
    for tag in tags:
        conn.execute("INSERT OR IGNORE INTO tags (name) VALUES (?)", (tag,))
        conn.execute(
            "INSERT OR IGNORE INTO machine_tags (machine_id, tag_id) "
            "SELECT ?, id FROM tags WHERE name = ?",
            (machine_id, tag),
        )


def _check_unique(
    conn: sqlite3.Connection, hostname: str, macs: Sequence[str], exclude_id: int | None
) -> None:
    row = conn.execute(
        "SELECT system_id FROM machines WHERE hostname = ? AND id IS NOT ?", (hostname, exclude_id)
    ).fetchone()
    if row is not None:
        raise Conflict(f"host name {hostname!r} is already used by machine {row[0]}")
    for mac in macs:
        row = conn.execute(
            "SELECT m.system_id FROM interfaces i JOIN machines m ON m.id = i.machine_id "
            "WHERE i.mac = ?",
            (mac,),
        ).fetchone()
        if row is not None:
            raise Conflict(f"MAC {mac} already belongs to machine {row[0]}")
