"""Script runs and results: every change is one group-committed job, reads go through aiosqlite.

As in `MachineStore.change`, the policy comes from the caller as a function run inside the
write transaction on the rows as they are at that moment (`decide`, `conclude`): the check of a
result's status, its change, the run's end, the machine's new status and the events that say
so commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain.errors import NotFound
from edgebox.domain.lifecycle import LifecycleState
from edgebox.domain.models import Machine, MachineChanges, NewEvent
from edgebox.domain.run_endings import Conclusion
from edgebox.domain.script_results import (
    SAME,
    VERDICT,
    ResultEvent,
    ResultStatus,
    next_status,
)
from edgebox.domain.script_runs import (
    PlannedResult,
    RunKind,
    RunState,
    ScriptResult,
    ScriptRun,
    StoredScript,
)
from edgebox.storage import machines_sql
from edgebox.storage import runs_sql as sql
from edgebox.storage.run_reads import RunReads
from edgebox.storage.script_store import current_scripts
from edgebox.storage.writer import Tx

ABORTED = ResultStatus.ABORTED
TIMEDOUT = ResultStatus.TIMEDOUT


@dataclass(frozen=True, slots=True)
class RunStart:
    """What `decide` returns to start a run."""

    lifecycle: LifecycleState
    kind: RunKind
    planned: Sequence[PlannedResult]
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class StartedRun:
    machine: Machine
    run: ScriptRun
    results: list[ScriptResult]


@dataclass(frozen=True, slots=True)
class Finished:
    """After a result's `done`: the result, and the run's end if this was its last result."""

    result: ScriptResult
    changed: bool  # False: a repeated done, nothing changed
    run: ScriptRun | None = None  # set when the run ended
    machine: Machine | None = None  # set when the run ended
    inventory_stored: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the caller decided a finished result is, and what comes with it."""

    status: ResultStatus
    note: str = ""
    inventory: Mapping[str, Any] | None = None  # store this inventory (the inventory script)


@dataclass(frozen=True, slots=True)
class Ended:
    """A run that has just ended, and its machine after (None: the machine is gone)."""

    run: ScriptRun | None = None
    machine: Machine | None = None


StartDecide = Callable[[Machine, list[StoredScript], dict[str, Any] | None], RunStart]
Conclude = Callable[[Machine, ScriptRun, list[ScriptResult]], Conclusion]
# The judge gets the result and a loader of the machine's stored inventory (read only if asked).
Judge = Callable[[ScriptResult, Callable[[], dict[str, Any] | None]], Verdict]


class RunStore(RunReads):
    """Runs and results: the writes here, the reads inherited from `RunReads`."""

    # -- starting and ending runs ------------------------------------------------------------

    async def start(self, system_id: str, decide: StartDecide, actor: str) -> StartedRun:
        def job(tx: Tx) -> StartedRun:
            machine = _machine(tx.conn, system_id)
            inventory = sql.load_inventory(tx.conn, machine.id)
            start = decide(machine, current_scripts(tx.conn), inventory)
            for stale in sql.running_runs_of(tx.conn, machine.id):
                note = "a new run replaced this one"
                sql.close_unfinished(
                    tx.conn, stale.id, tx.now, running_to=ABORTED, pending_to=ABORTED, note=note
                )
                sql.finish_run(tx.conn, stale.id, RunState.ABORTED, tx.now)
            run_id = sql.insert_run(tx.conn, machine.id, start.kind, actor, tx.now)
            sql.insert_results(
                tx.conn, run_id, machine.id, start.planned,
                first_position=0, now=tx.now, step=sql.POSITION_STEP,
            )  # fmt: skip
            after = _change_lifecycle(tx, machine, start.lifecycle, start.events)
            run = sql.load_run(tx.conn, run_id)
            assert run is not None
            return StartedRun(after, run, sql.run_results(tx.conn, run_id))

        return await self._db.write(job)

    async def abort(
        self,
        system_id: str,
        decide: Callable[[Machine], tuple[LifecycleState, Sequence[NewEvent]]],
        note: str,
    ) -> tuple[Machine, list[ScriptRun]]:
        def job(tx: Tx) -> tuple[Machine, list[ScriptRun]]:
            machine = _machine(tx.conn, system_id)
            lifecycle, events = decide(machine)
            runs = sql.running_runs_of(tx.conn, machine.id)
            for run in runs:
                sql.close_unfinished(
                    tx.conn, run.id, tx.now, running_to=ABORTED, pending_to=ABORTED, note=note
                )
                sql.finish_run(tx.conn, run.id, RunState.ABORTED, tx.now)
            return _change_lifecycle(tx, machine, lifecycle, events), runs

        return await self._db.write(job)

    async def expire(self, run_id: int, conclude: Conclude, note: str) -> Ended | None:
        """The watchdog's end of a run: running results time out, pending ones are aborted.
        None when the run has already ended (or its machine is gone)."""

        def job(tx: Tx) -> Ended | None:
            run = sql.load_run(tx.conn, run_id)
            if run is None or run.state is not RunState.RUNNING:
                return None
            sql.close_unfinished(
                tx.conn, run.id, tx.now, running_to=TIMEDOUT, pending_to=ABORTED, note=note
            )
            return _conclude(tx, run, conclude)

        return await self._db.write(job)

    # -- the agent's calls on one result -----------------------------------------------------

    async def start_result(self, result_id: int, machine_id: int, boot: str) -> ScriptResult:
        def job(tx: Tx) -> ScriptResult:
            result = _result(tx.conn, result_id, machine_id)
            if next_status(result.status, ResultEvent.START) is SAME:
                return result
            sql.set_result(
                tx.conn, result.id, status=ResultStatus.RUNNING, started_at=tx.now, boot=boot
            )
            return _reload(tx.conn, result.id)

        return await self._db.write(job)

    async def put_output(
        self, result_id: int, machine_id: int, stream: str, data: bytes, size: int
    ) -> ScriptResult:
        def job(tx: Tx) -> ScriptResult:
            result = _result(tx.conn, result_id, machine_id)
            next_status(result.status, ResultEvent.OUTPUT)
            sql.store_output(tx.conn, result.id, stream, data, size)
            return result

        return await self._db.write(job)

    async def put_result_file(
        self,
        result_id: int,
        machine_id: int,
        *,
        raw: bytes,
        reported: ResultStatus | None,
        results: Mapping[str, Any],
        note: str,
    ) -> ScriptResult:
        def job(tx: Tx) -> ScriptResult:
            result = _result(tx.conn, result_id, machine_id)
            next_status(result.status, ResultEvent.RESULT_FILE)
            sql.store_output(tx.conn, result.id, "result", raw, len(raw))
            sql.set_result(
                tx.conn,
                result.id,
                reported_status=reported.value if reported else None,
                results=results,
                note=note,
            )
            return _reload(tx.conn, result.id)

        return await self._db.write(job)

    async def finish(
        self, result_id: int, machine_id: int, done: Mapping[str, Any], judge: Judge,
        conclude: Conclude,
    ) -> Finished:  # fmt: skip
        """Record `done` ({exit_code, runtime}); `judge` decides the status (and may hand
        over an inventory to store); the run ends if this was its last unfinished result."""

        def job(tx: Tx) -> Finished:
            result = _result(tx.conn, result_id, machine_id)
            if next_status(result.status, ResultEvent.DONE) is not VERDICT:
                return Finished(result, False)
            verdict = judge(result, lambda: sql.load_inventory(tx.conn, machine_id))
            note = "; ".join(n for n in (result.note, verdict.note) if n)
            sql.set_result(
                tx.conn,
                result.id,
                status=verdict.status,
                note=note,
                finished_at=tx.now,
                exit_code=done.get("exit_code"),
                runtime=done.get("runtime"),
            )
            if verdict.inventory is not None:
                sql.store_inventory(tx.conn, machine_id, verdict.inventory, tx.now)
            ending = Ended()
            if sql.unfinished_count(tx.conn, result.run_id) == 0:
                run = sql.load_run(tx.conn, result.run_id)
                if run is not None and run.state is RunState.RUNNING:
                    ending = _conclude(tx, run, conclude)
            return Finished(
                _reload(tx.conn, result.id),
                True,
                ending.run,
                ending.machine,
                verdict.inventory is not None,
            )

        return await self._db.write(job)

    async def expand_placeholders(
        self,
        run_id: int,
        machine_id: int,
        expand: Callable[[ScriptResult, dict[str, Any] | None], list[PlannedResult]],
        conclude: Conclude,
    ) -> Ended | None:
        """Replace the run's per-device placeholders by one result per device (or a skipped
        one), each in its placeholder's place in the order. If that leaves nothing to run
        (every one skipped), the run ends here: the Ended is returned."""

        def job(tx: Tx) -> Ended | None:
            inventory = sql.load_inventory(tx.conn, machine_id)
            for placeholder in sql.run_results(tx.conn, run_id):
                if not placeholder.expand or placeholder.status is not ResultStatus.PENDING:
                    continue
                tx.conn.execute("DELETE FROM script_results WHERE id = ?", (placeholder.id,))
                planned = expand(placeholder, inventory)[: sql.POSITION_STEP - 1]
                sql.insert_results(
                    tx.conn, run_id, machine_id, planned,
                    first_position=placeholder.position, now=tx.now, step=1,
                )  # fmt: skip
            run = sql.load_run(tx.conn, run_id)
            if run is None or run.state is not RunState.RUNNING:
                return None
            if sql.unfinished_count(tx.conn, run_id):
                return None
            return _conclude(tx, run, conclude)

        return await self._db.write(job)

    async def requeue_other_boots(self, run_id: int, boot: str, note: str) -> list[int]:
        """Results left running by an earlier boot of the machine go back to pending: that
        boot is gone (its token was replaced), so they will never finish otherwise."""

        def job(tx: Tx) -> list[int]:
            rows = tx.conn.execute(
                "SELECT id FROM script_results WHERE run_id = ? AND status = 'running' "
                "AND boot != ?",
                (run_id, boot),
            ).fetchall()
            for (result_id,) in rows:
                sql.set_result(
                    tx.conn, result_id, status=ResultStatus.PENDING, started_at=None, note=note
                )
            return [int(r[0]) for r in rows]

        return await self._db.write(job)


def _machine(conn: sqlite3.Connection, system_id: str) -> Machine:
    machine = machines_sql.load_machine(conn, system_id)
    if machine is None:
        raise NotFound("machine", system_id)
    return machine


def _result(conn: sqlite3.Connection, result_id: int, machine_id: int) -> ScriptResult:
    result = sql.load_result(conn, result_id)
    if result is None or result.machine_id != machine_id:
        raise NotFound("result", str(result_id))
    return result


def _reload(conn: sqlite3.Connection, result_id: int) -> ScriptResult:
    result = sql.load_result(conn, result_id)
    assert result is not None
    return result


def _change_lifecycle(
    tx: Tx, machine: Machine, lifecycle: LifecycleState, events: Sequence[NewEvent]
) -> Machine:
    machines_sql.update_machine(tx.conn, machine, MachineChanges(lifecycle=lifecycle), tx.now)
    for event in events:
        tx.emit(event)
    after = machines_sql.load_machine(tx.conn, machine.system_id)
    assert after is not None
    return after


def _conclude(tx: Tx, run: ScriptRun, conclude: Conclude) -> Ended:
    system_id = tx.conn.execute(
        "SELECT system_id FROM machines WHERE id = ?", (run.machine_id,)
    ).fetchone()
    results = sql.run_results(tx.conn, run.id)
    machine = machines_sql.load_machine(tx.conn, system_id[0]) if system_id else None
    if machine is None:
        sql.finish_run(tx.conn, run.id, RunState.ABORTED, tx.now)
        return Ended()
    ending = conclude(machine, run, results)
    sql.finish_run(tx.conn, run.id, ending.state, tx.now)
    if ending.lifecycle is not None:
        machine = _change_lifecycle(tx, machine, ending.lifecycle, ending.events)
    else:
        for event in ending.events:
            tx.emit(event)
    return Ended(sql.load_run(tx.conn, run.id), machine)
