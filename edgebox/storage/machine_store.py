"""Machines: reads through aiosqlite, changes as group-committed write jobs.

A change is decided by a pure function the caller passes in (`decide(machine)`), run inside
the write transaction on the machine as it is at that moment: the read, the lifecycle check and
the write are one atomic step, and the events the change emits commit with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgebox.domain.errors import NotFound
from edgebox.domain.models import Machine, MachineChanges, MachineFilter, NewEvent, NewMachine
from edgebox.storage import machines_sql as sql
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx

Decision = tuple[MachineChanges, Sequence[NewEvent]]


@dataclass(frozen=True, slots=True)
class MachinePage:
    items: list[Machine]
    total: int
    next_after: int | None  # pass as `after` to get the next page; None on the last page


class MachineStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, system_id: str) -> Machine:
        rows = await self._db.fetchall(
            f"SELECT {sql.MACHINE_COLUMNS} FROM machines WHERE system_id = ?", (system_id,)
        )
        machines = await self._with_related(rows)
        if not machines:
            raise NotFound("machine", system_id)
        return machines[0]

    async def inventory(self, system_id: str) -> dict[str, object] | None:
        """The hardware inventory the machine's agent last reported (None: none yet)."""
        row = await self._db.fetchone(
            "SELECT i.data FROM machine_inventory i JOIN machines m ON m.id = i.machine_id "
            "WHERE m.system_id = ?",
            (system_id,),
        )
        if row is None:
            await self.get(system_id)  # NotFound for an unknown machine
            return None
        data: dict[str, object] = json.loads(row[0])
        return data

    async def query(self, flt: MachineFilter, limit: int, after: int = 0) -> MachinePage:
        where, params = sql.filter_sql(flt)
        clause = f"WHERE {where}" if where else ""
        count_row = await self._db.fetchone(f"SELECT count(*) FROM machines {clause}", params)
        total = count_row[0] if count_row else 0
        paged = f"{where} AND id > ?" if where else "id > ?"
        rows = await self._db.fetchall(
            f"SELECT {sql.MACHINE_COLUMNS} FROM machines WHERE {paged} ORDER BY id LIMIT ?",
            [*params, after, limit + 1],
        )
        more = len(rows) > limit
        items = await self._with_related(rows[:limit])
        return MachinePage(items, total, items[-1].id if more and items else None)

    async def _with_related(self, rows: Sequence[object]) -> list[Machine]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]  # type: ignore[index]
        tags_sql, nics_sql, params = sql.related_sql(ids)
        tag_rows = await self._db.fetchall(tags_sql, params)
        nic_rows = await self._db.fetchall(nics_sql, params)
        return sql.assemble(rows, tag_rows, nic_rows)  # type: ignore[arg-type]

    async def create(
        self, new: NewMachine, events: Callable[[Machine], Sequence[NewEvent]]
    ) -> Machine:
        def job(tx: Tx) -> Machine:
            sql.insert_machine(tx.conn, new, tx.now)
            machine = sql.load_machine(tx.conn, new.system_id)
            assert machine is not None
            for event in events(machine):
                tx.emit(event)
            return machine

        return await self._db.write(job)

    async def change(self, system_id: str, decide: Callable[[Machine], Decision]) -> Machine:
        def job(tx: Tx) -> Machine:
            machine = _load(tx, system_id)
            changes, events = decide(machine)
            sql.update_machine(tx.conn, machine, changes, tx.now)
            for event in events:
                tx.emit(event)
            after = sql.load_machine(tx.conn, system_id)
            assert after is not None
            return after

        return await self._db.write(job)

    async def delete(
        self, system_id: str, decide: Callable[[Machine], Sequence[NewEvent]]
    ) -> Machine:
        def job(tx: Tx) -> Machine:
            machine = _load(tx, system_id)
            events = decide(machine)
            sql.delete_machine(tx.conn, machine.id)
            for event in events:
                tx.emit(event)
            return machine

        return await self._db.write(job)


def _load(tx: Tx, system_id: str) -> Machine:
    machine = sql.load_machine(tx.conn, system_id)
    if machine is None:
        raise NotFound("machine", system_id)
    return machine
