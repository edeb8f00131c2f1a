"""Deployments, releases, rollouts and allocation: group-committed jobs and aiosqlite reads.

As in `MachineStore.change`, the policy comes from the caller as a pure function run inside
the write transaction on the rows as they are at that moment (`decide`): the lifecycle check,
the deployment's change, the machine's new status and owner, and the events commit together or
not at all. A bulk reservation is one job with a savepoint per machine, so one refused machine
leaves the others' reservations standing and 300 machines cost one commit.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edgebox.domain.deployment import DeployKind, Deployment, DeployState, KnownDisk
from edgebox.domain.errors import EdgeboxError, NotFound
from edgebox.domain.hardware import hardware_of
from edgebox.domain.lifecycle import IllegalTransition, LifecycleState, Status
from edgebox.domain.models import Machine, MachineChanges, MachineFilter, NewEvent
from edgebox.domain.rollout import RolloutState, wave_of
from edgebox.storage import deploy_sql as sql
from edgebox.storage import machines_sql
from edgebox.storage.database import Database
from edgebox.storage.deploy_sql import Rollout
from edgebox.storage.writer import Tx


class Keep(enum.Enum):
    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Change:
    """What a decision does: deployment columns, the machine's lifecycle, owner and host
    name, and the events that say so."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    lifecycle: LifecycleState | None = None
    owner: str | Keep | None = KEEP
    hostname: str | None = None
    events: Sequence[NewEvent] = ()


@dataclass(frozen=True, slots=True)
class Changed:
    machine: Machine
    deployment: Deployment


@dataclass(frozen=True, slots=True)
class Reservation:
    """An accepted machine: its new deployment row (id, system_id and wave are filled in by
    the store) and what happens to the machine."""

    deployment: Deployment
    change: Change


@dataclass(frozen=True, slots=True)
class Reserved:
    system_id: str
    hostname: str
    deployment: Deployment | None = None
    refusal: Exception | None = None  # EdgeboxError or IllegalTransition


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    change: Change
    deployment: Deployment | None  # the release's row (None: nothing to record)
    cancel: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Released:
    machine: Machine
    deployment: Deployment | None
    cancelled: list[Deployment]


@dataclass(frozen=True, slots=True)
class RolloutItem:
    deployment: Deployment
    hostname: str
    status: Status


Decide = Callable[[Machine, Deployment], Change | None]
ReserveDecide = Callable[[Machine, list[Deployment]], Reservation]
ReleaseDecide = Callable[[Machine, list[Deployment]], ReleasePlan]
Refusals = (EdgeboxError, IllegalTransition)


class DeployStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes ------------------------------------------------------------------------------

    async def allocate(
        self, system_ids: Sequence[str], decide: Callable[[Machine], Change]
    ) -> list[Machine]:
        """All or nothing: a refusal of any machine (raised by `decide`) undoes them all."""

        def job(tx: Tx) -> list[Machine]:
            out = []
            for sid in system_ids:
                machine = _machine(tx.conn, sid)
                out.append(_apply(tx, machine, decide(machine)))
            return out

        return await self._db.write(job)

    async def reserve(
        self,
        system_ids: Sequence[str],
        decide: ReserveDecide,
        rollout: tuple[DeployKind, int, int, str] | None = None,
    ) -> tuple[int | None, list[Reserved]]:
        """Queue a deployment for each machine `decide` accepts, the K-th accepted in wave
        K // wave_size; a new rollout (kind, wave size, max failures, by) when given."""

        def job(tx: Tx) -> tuple[int | None, list[Reserved]]:
            rollout_id, wave_size = None, 0
            if rollout is not None:
                kind, wave_size, max_failures, by = rollout
                rollout_id = sql.insert_rollout(
                    tx.conn, kind=kind, wave_size=wave_size, max_failures=max_failures, by=by,
                    now=tx.now,
                )  # fmt: skip
            out: list[Reserved] = []
            accepted = 0
            for sid in system_ids:
                machine = machines_sql.load_machine(tx.conn, sid)
                if machine is None:
                    out.append(Reserved(sid, "", refusal=NotFound("machine", sid)))
                    continue
                tx.conn.execute("SAVEPOINT reserve")
                try:
                    chosen = decide(machine, sql.open_of(tx.conn, machine.id))
                    row = replace(chosen.deployment, rollout_id=rollout_id,
                                  wave=wave_of(accepted, wave_size))  # fmt: skip
                    after = _apply(tx, machine, chosen.change)
                    new_id = sql.insert(tx.conn, row, tx.now)
                except Refusals as exc:
                    tx.conn.execute("ROLLBACK TO reserve")
                    tx.conn.execute("RELEASE reserve")
                    out.append(Reserved(sid, machine.hostname, refusal=exc))
                    continue
                tx.conn.execute("RELEASE reserve")
                accepted += 1
                out.append(Reserved(sid, after.hostname, _load(tx.conn, new_id)))
            return rollout_id, out

        return await self._db.write(job)

    async def change(self, deployment_id: int, decide: Decide) -> Changed | None:
        """Apply `decide` to the deployment and its machine; None when it decides nothing
        (or the deployment or its machine is gone)."""
        changed = await self.change_many([deployment_id], decide)
        return changed[0] if changed else None

    async def change_many(self, deployment_ids: Sequence[int], decide: Decide) -> list[Changed]:
        def job(tx: Tx) -> list[Changed]:
            out = []
            for deployment_id in deployment_ids:
                deployment = sql.load(tx.conn, deployment_id)
                if deployment is None:
                    continue
                machine = machines_sql.load_machine(tx.conn, deployment.system_id)
                assert machine is not None  # the JOIN found it
                change = decide(machine, deployment)
                if change is None:
                    continue
                sql.update(tx.conn, deployment_id, change.fields, tx.now)
                out.append(Changed(_apply(tx, machine, change), _load(tx.conn, deployment_id)))
            return out

        return await self._db.write(job)

    async def start_release(
        self, system_id: str, decide: ReleaseDecide, rollout_id: int | None = None
    ) -> Released:
        def job(tx: Tx) -> Released:
            machine = _machine(tx.conn, system_id)
            open_ = sql.open_of(tx.conn, machine.id)
            plan = decide(machine, open_)
            cancelled = []
            for deployment_id, fields in plan.cancel.items():
                sql.update(tx.conn, deployment_id, fields, tx.now)
                cancelled.append(_load(tx.conn, deployment_id))
            row = None
            if plan.deployment is not None:
                new = replace(plan.deployment, rollout_id=rollout_id)
                row = _load(tx.conn, sql.insert(tx.conn, new, tx.now))
            return Released(_apply(tx, machine, plan.change), row, cancelled)

        return await self._db.write(job)

    async def new_rollout(self, kind: DeployKind, by: str) -> int:
        def job(tx: Tx) -> int:
            return sql.insert_rollout(
                tx.conn, kind=kind, wave_size=0, max_failures=0, by=by, now=tx.now
            )

        return await self._db.write(job)

    async def end_rollout(
        self, rollout_id: int, state: RolloutState, reason: str, events: Sequence[NewEvent]
    ) -> bool:
        """Mark a running rollout stopped or done; False if it had ended already."""

        def job(tx: Tx) -> bool:
            cursor = tx.conn.execute(
                "UPDATE rollouts SET state = ?, reason = ?, finished_at = ? "
                "WHERE id = ? AND state = 'running'",
                (state.value, reason, tx.now, rollout_id),
            )
            if cursor.rowcount:
                for event in events:
                    tx.emit(event)
            return bool(cursor.rowcount)

        return await self._db.write(job)

    async def put_log(self, deployment_id: int, data: bytes, size: int) -> None:
        def job(tx: Tx) -> None:
            sql.store_log(tx.conn, deployment_id, data, size)

        await self._db.write(job)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, deployment_id: int) -> Deployment | None:
        row = await self._db.fetchone(f"{sql.SELECT} WHERE d.id = ?", (deployment_id,))
        return sql.deployment_from_row(row) if row else None

    async def open_deployments(self) -> list[Deployment]:
        rows = await self._db.fetchall(f"{sql.SELECT} WHERE {sql.OPEN} ORDER BY d.id")
        return [sql.deployment_from_row(r) for r in rows]

    async def latest(self, system_id: str, kind: DeployKind | None = None) -> Deployment | None:
        where, params = "m.system_id = ?", [system_id]
        if kind is not None:
            where += " AND d.kind = ?"
            params.append(kind.value)
        row = await self._db.fetchone(
            f"{sql.SELECT} WHERE {where} ORDER BY d.id DESC LIMIT 1", params
        )
        return sql.deployment_from_row(row) if row else None

    async def known_disks(self, machine_id: int) -> list[KnownDisk]:
        """The disks the machine's inventory lists (empty: it has none), for checking what the
        agent says it wrote or erased."""
        row = await self._db.fetchone(
            "SELECT data FROM machine_inventory WHERE machine_id = ?", (machine_id,)
        )
        if row is None:
            return []
        disks = hardware_of(json.loads(row[0])).disks
        return [KnownDisk(d.name, d.serial or "") for d in disks]

    async def deployed(self, system_id: str) -> Deployment | None:
        """The deploy that a Deployed machine runs (None: the machine is not Deployed)."""
        row = await self._db.fetchone(
            f"{sql.SELECT} WHERE m.system_id = ? AND m.status = 'deployed' AND d.kind = 'deploy' "
            "AND d.state = 'succeeded' ORDER BY d.id DESC LIMIT 1",
            (system_id,),
        )
        return sql.deployment_from_row(row) if row else None

    async def log(self, deployment_id: int) -> tuple[bytes, int] | None:
        row = await self._db.fetchone(
            "SELECT data, size FROM deployment_logs WHERE deployment_id = ?", (deployment_id,)
        )
        return (bytes(row[0]), int(row[1])) if row else None

    async def rollout(self, rollout_id: int) -> Rollout | None:
        row = await self._db.fetchone(
            f"SELECT {sql.ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,)
        )
        return sql.rollout_from_row(row) if row else None

    async def running_rollouts(self) -> list[int]:
        rows = await self._db.fetchall("SELECT id FROM rollouts WHERE state = 'running'")
        return [int(r[0]) for r in rows]

    async def rollout_items(self, rollout_id: int) -> list[RolloutItem]:
        rows = await self._db.fetchall(
            f"SELECT {sql.COLUMNS}, m.hostname, m.status FROM deployments d "
            "JOIN machines m ON m.id = d.machine_id WHERE d.rollout_id = ? ORDER BY d.wave, d.id",
            (rollout_id,),
        )
        width = len(sql.COLUMNS.split(","))
        return [
            RolloutItem(sql.deployment_from_row(r), r[width], Status(r[width + 1])) for r in rows
        ]

    async def rollout_states(self, rollout_id: int) -> list[tuple[int, DeployState]]:
        rows = await self._db.fetchall(
            "SELECT wave, state FROM deployments WHERE rollout_id = ?", (rollout_id,)
        )
        return [(int(r[0]), DeployState(r[1])) for r in rows]

    async def queued_in_wave(self, rollout_id: int, wave: int) -> list[int]:
        rows = await self._db.fetchall(
            "SELECT id FROM deployments WHERE rollout_id = ? AND wave = ? AND state = 'queued' "
            "ORDER BY id",
            (rollout_id, wave),
        )
        return [int(r[0]) for r in rows]

    async def queued_of_rollout(self, rollout_id: int) -> list[int]:
        rows = await self._db.fetchall(
            "SELECT id FROM deployments WHERE rollout_id = ? AND state = 'queued' ORDER BY id",
            (rollout_id,),
        )
        return [int(r[0]) for r in rows]

    async def ready_machines(self, flt: MachineFilter, limit: int) -> list[Machine]:
        """Ready machines matching `flt` (its status is ignored), with tags and interfaces."""
        where, params = machines_sql.filter_sql(replace(flt, status=(Status.READY,)))
        rows = await self._db.fetchall(
            f"SELECT {machines_sql.MACHINE_COLUMNS} FROM machines WHERE {where} "
            "ORDER BY id LIMIT ?",
            [*params, limit],
        )
        if not rows:
            return []
        tags_sql, nics_sql, ids = machines_sql.related_sql([r["id"] for r in rows])
        return machines_sql.assemble(
            rows, await self._db.fetchall(tags_sql, ids), await self._db.fetchall(nics_sql, ids)
        )

    async def inventory_facts(
        self, machine_ids: Sequence[int]
    ) -> dict[int, tuple[int | None, int | None, str]]:
        """(cores, memory MiB, uname -m) from each machine's inventory, picked out by SQLite."""
        found: dict[int, tuple[int | None, int | None, str]] = {}
        for start in range(0, len(machine_ids), 500):  # under SQLite's bound-parameter limit
            chunk = list(machine_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = await self._db.fetchall(
                "SELECT machine_id, json_extract(data, '$.cpu.cores'), "
                "json_extract(data, '$.memory.total_mib'), json_extract(data, '$.cpu.arch') "
                f"FROM machine_inventory WHERE machine_id IN ({marks})",
                chunk,
            )
            for r in rows:
                found[int(r[0])] = (_int(r[1]), _int(r[2]), r[3] if isinstance(r[3], str) else "")
        return found


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _machine(conn: sqlite3.Connection, system_id: str) -> Machine:
    machine = machines_sql.load_machine(conn, system_id)
    if machine is None:
        raise NotFound("machine", system_id)
    return machine


def _load(conn: sqlite3.Connection, deployment_id: int) -> Deployment:
    deployment = sql.load(conn, deployment_id)
    assert deployment is not None
    return deployment


def _apply(tx: Tx, machine: Machine, change: Change) -> Machine:
    """The machine side of a change: lifecycle, host name, owner, events. Returns it after."""
    if change.lifecycle is not None or change.hostname is not None:
        changes = MachineChanges(hostname=change.hostname, lifecycle=change.lifecycle)
        machines_sql.update_machine(tx.conn, machine, changes, tx.now)
    if change.owner is not KEEP:
        sql.set_owner(tx.conn, machine.id, change.owner)
    for event in change.events:
        tx.emit(event)
    if change.lifecycle is None and change.hostname is None and change.owner is KEEP:
        return machine
    after = machines_sql.load_machine(tx.conn, machine.system_id)
    assert after is not None
    return after
