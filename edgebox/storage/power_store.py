"""BMC settings and the durable power queue.

The queue lives in `power_ops`. An operation is queued, then running, then done or failed (or
waiting for a person, for the manual driver). Claiming, finishing and the power state with its
event are each one transaction, so a crash leaves every operation in a state that
`recover()` can read and resume.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain.errors import NotFound
from edgebox.domain.models import NewEvent
from edgebox.domain.power import PowerOp, PowerOpState, PowerState
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx

OPEN_STATES = (PowerOpState.QUEUED, PowerOpState.RUNNING, PowerOpState.WAITING)
_OP_COLUMNS = (
    "o.id, o.machine_id, m.system_id, o.op, o.state, o.attempts, o.error, o.requested_by, "
    "o.not_before, o.created_at, o.updated_at"
)


@dataclass(frozen=True, slots=True)
class BmcRecord:
    machine_id: int
    system_id: str
    driver: str
    address: str
    username: str
    secret: bytes | None  # the password, sealed; see services/secret_box.py
    options: dict[str, Any]  # the options that are not secret
    secret_options: bytes | None = None  # a JSON object of the secret options, sealed


@dataclass(frozen=True, slots=True)
class BmcRow:
    """What `set_bmc` writes: every column (secrets sealed), and the event that says so."""

    driver: str
    address: str
    username: str
    secret: bytes | None
    options: dict[str, Any]
    secret_options: bytes | None
    event: NewEvent


@dataclass(frozen=True, slots=True)
class PowerOpRecord:
    id: int
    machine_id: int
    system_id: str
    op: PowerOp
    state: PowerOpState
    attempts: int
    error: str
    requested_by: str
    not_before: float
    created_at: float
    updated_at: float


def _op(row: sqlite3.Row | tuple[Any, ...]) -> PowerOpRecord:
    return PowerOpRecord(
        id=row[0],
        machine_id=row[1],
        system_id=row[2],
        op=PowerOp(row[3]),
        state=PowerOpState(row[4]),
        attempts=row[5],
        error=row[6],
        requested_by=row[7],
        not_before=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def _bmc(row: sqlite3.Row | tuple[Any, ...]) -> BmcRecord:
    return BmcRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7])


_BMC_SELECT = (
    "SELECT b.machine_id, m.system_id, b.driver, b.address, b.username, b.secret, b.options, "
    "b.secret_options FROM bmcs b JOIN machines m ON m.id = b.machine_id"
)


class PowerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- BMCs -------------------------------------------------------------------------------

    async def bmc(self, system_id: str) -> BmcRecord | None:
        row = await self._db.fetchone(f"{_BMC_SELECT} WHERE m.system_id = ?", (system_id,))
        return _bmc(row) if row else None

    async def bmc_by_id(self, machine_id: int) -> BmcRecord | None:
        row = await self._db.fetchone(f"{_BMC_SELECT} WHERE b.machine_id = ?", (machine_id,))
        return _bmc(row) if row else None

    async def bmcs(self, drivers_excluded: Sequence[str] = ()) -> list[BmcRecord]:
        marks = ",".join("?" * len(drivers_excluded)) or "''"
        rows = await self._db.fetchall(
            f"{_BMC_SELECT} WHERE b.driver NOT IN ({marks}) ORDER BY b.machine_id",
            tuple(drivers_excluded),
        )
        return [_bmc(row) for row in rows]

    async def set_bmc(self, machine_id: int, decide: Callable[[BmcRecord | None], BmcRow]) -> None:
        """Replace the machine's BMC with what `decide` makes of the stored one (None: there is
        none). `decide` runs inside the transaction, so what it keeps of the stored secrets is
        what is stored when the new row commits."""

        def job(tx: Tx) -> None:
            row = tx.conn.execute(f"{_BMC_SELECT} WHERE b.machine_id = ?", (machine_id,))
            found = row.fetchone()
            new = decide(_bmc(found) if found else None)
            tx.conn.execute(
                "INSERT INTO bmcs (machine_id, driver, address, username, secret, options, "
                "secret_options) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (machine_id) DO UPDATE "
                "SET driver = excluded.driver, address = excluded.address, "
                "username = excluded.username, secret = excluded.secret, "
                "options = excluded.options, secret_options = excluded.secret_options",
                (
                    machine_id,
                    new.driver,
                    new.address,
                    new.username,
                    new.secret,
                    json.dumps(new.options),
                    new.secret_options,
                ),
            )
            tx.emit(new.event)

        await self._db.write(job)

    async def move_secret_options(
        self, before: BmcRecord, options: dict[str, Any], secret_options: bytes | None
    ) -> bool:
        """Store `options` and sealed `secret_options` in place of what `before` holds, unless
        the BMC changed since `before` was read (then False, and nothing is written)."""

        def job(tx: Tx) -> bool:
            done = tx.conn.execute(
                "UPDATE bmcs SET options = ?, secret_options = ? WHERE machine_id = ? "
                "AND driver = ? AND address = ? AND options = ? AND secret_options IS ?",
                (
                    json.dumps(options),
                    secret_options,
                    before.machine_id,
                    before.driver,
                    before.address,
                    json.dumps(before.options),
                    before.secret_options,
                ),
            )
            return done.rowcount > 0

        return await self._db.write(job)

    async def delete_bmc(self, machine_id: int, event: NewEvent) -> bool:
        def job(tx: Tx) -> bool:
            gone = tx.conn.execute("DELETE FROM bmcs WHERE machine_id = ?", (machine_id,))
            if gone.rowcount:
                tx.emit(event)
            return gone.rowcount > 0

        return await self._db.write(job)

    # -- the queue -----------------------------------------------------------------------

    async def enqueue(
        self, machine_id: int, op: PowerOp, requested_by: str, event: NewEvent
    ) -> PowerOpRecord:
        """Queue `op`, unless the same operation is already queued for the machine: then that
        one is returned (a double click, a retried API call) and nothing is written."""

        def job(tx: Tx) -> PowerOpRecord:
            same = tx.conn.execute(
                f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
                "WHERE o.machine_id = ? AND o.op = ? AND o.state = ?",
                (machine_id, op.value, PowerOpState.QUEUED.value),
            ).fetchone()
            if same is not None:
                return _op(same)
            cursor = tx.conn.execute(
                "INSERT INTO power_ops (machine_id, op, state, requested_by, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (machine_id, op.value, PowerOpState.QUEUED.value, requested_by, tx.now, tx.now),
            )
            tx.emit(event)
            return _load_op(tx.conn, int(cursor.lastrowid or 0))

        return await self._db.write(job)

    async def op(self, op_id: int) -> PowerOpRecord:
        row = await self._db.fetchone(
            f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
            "WHERE o.id = ?",
            (op_id,),
        )
        if row is None:
            raise NotFound("power operation", str(op_id))
        return _op(row)

    async def ops(self, op_ids: Sequence[int]) -> list[PowerOpRecord]:
        if not op_ids:
            return []
        marks = ",".join("?" * len(op_ids))
        rows = await self._db.fetchall(
            f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
            f"WHERE o.id IN ({marks}) ORDER BY o.id",
            tuple(op_ids),
        )
        return [_op(row) for row in rows]

    async def recent_ops(self, machine_id: int, limit: int = 10) -> list[PowerOpRecord]:
        rows = await self._db.fetchall(
            f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
            "WHERE o.machine_id = ? ORDER BY o.id DESC LIMIT ?",
            (machine_id, limit),
        )
        return [_op(row) for row in rows]

    async def open_ops(self) -> list[PowerOpRecord]:
        rows = await self._db.fetchall(
            f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
            "WHERE o.state IN (?, ?, ?) ORDER BY o.id",
            tuple(s.value for s in OPEN_STATES),
        )
        return [_op(row) for row in rows]

    async def recover(self, describe: Callable[[PowerOpRecord], NewEvent]) -> list[PowerOpRecord]:
        """After a restart: operations that were running when the process died are queued
        again (every operation is safe to repeat: it drives the BMC to a state), each with
        an event. Returns them."""

        def job(tx: Tx) -> list[PowerOpRecord]:
            rows = tx.conn.execute(
                f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
                "WHERE o.state = ?",
                (PowerOpState.RUNNING.value,),
            ).fetchall()
            resumed = []
            for row in rows:
                record = _op(row)
                tx.conn.execute(
                    "UPDATE power_ops SET state = ?, updated_at = ? WHERE id = ?",
                    (PowerOpState.QUEUED.value, tx.now, record.id),
                )
                tx.emit(describe(record))
                resumed.append(_load_op(tx.conn, record.id))
            return resumed

        return await self._db.write(job)

    async def start(self, op_id: int) -> PowerOpRecord:
        def job(tx: Tx) -> PowerOpRecord:
            tx.conn.execute(
                "UPDATE power_ops SET state = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE id = ?",
                (PowerOpState.RUNNING.value, tx.now, op_id),
            )
            return _load_op(tx.conn, op_id)

        return await self._db.write(job)

    async def retry_later(self, op_id: int, not_before: float, error: str) -> None:
        def job(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE power_ops SET state = ?, not_before = ?, error = ?, updated_at = ? "
                "WHERE id = ?",
                (PowerOpState.QUEUED.value, not_before, error, tx.now, op_id),
            )

        await self._db.write(job)

    async def finish(
        self,
        op_id: int,
        state: PowerOpState,
        error: str,
        power_state: PowerState | None,
        events: Sequence[NewEvent],
    ) -> PowerOpRecord:
        """End (or park, for WAITING) an operation; record the machine's power state if known."""

        def job(tx: Tx) -> PowerOpRecord:
            tx.conn.execute(
                "UPDATE power_ops SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                (state.value, error, tx.now, op_id),
            )
            record = _load_op(tx.conn, op_id)
            if power_state is not None:
                _set_power_state(tx.conn, record.machine_id, power_state)
            for event in events:
                tx.emit(event)
            return record

        return await self._db.write(job)

    async def confirm_waiting(
        self, machine_id: int, describe: Callable[[PowerOpRecord], NewEvent]
    ) -> list[PowerOpRecord]:
        """A person says they did what the waiting operations asked: they are done."""

        def job(tx: Tx) -> list[PowerOpRecord]:
            rows = tx.conn.execute(
                f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
                "WHERE o.machine_id = ? AND o.state = ? ORDER BY o.id",
                (machine_id, PowerOpState.WAITING.value),
            ).fetchall()
            done = []
            for row in rows:
                tx.conn.execute(
                    "UPDATE power_ops SET state = ?, updated_at = ? WHERE id = ?",
                    (PowerOpState.DONE.value, tx.now, row[0]),
                )
                tx.emit(describe(_op(row)))
                done.append(_load_op(tx.conn, row[0]))
            return done

        return await self._db.write(job)

    async def set_power_state(
        self, machine_id: int, state: PowerState, event: Callable[[PowerState], NewEvent | None]
    ) -> PowerState:
        """Record a polled state; `event(previous)` describes the change (None: no event).
        Returns the previous state."""

        def job(tx: Tx) -> PowerState:
            row = tx.conn.execute(
                "SELECT power_state FROM machines WHERE id = ?", (machine_id,)
            ).fetchone()
            if row is None:
                return state  # deleted meanwhile
            previous = PowerState(row[0])
            if previous != state:
                _set_power_state(tx.conn, machine_id, state)
                described = event(previous)
                if described is not None:
                    tx.emit(described)
            return previous

        return await self._db.write(job)


def _set_power_state(conn: sqlite3.Connection, machine_id: int, state: PowerState) -> None:
    conn.execute("UPDATE machines SET power_state = ? WHERE id = ?", (state.value, machine_id))


def _load_op(conn: sqlite3.Connection, op_id: int) -> PowerOpRecord:
    row = conn.execute(
        f"SELECT {_OP_COLUMNS} FROM power_ops o JOIN machines m ON m.id = o.machine_id "
        "WHERE o.id = ?",
        (op_id,),
    ).fetchone()
    return _op(row)
