"""Script runs and results, read side: what the agent's plan, the API and the watchdog read.

Every read here is by primary key or through an index (`script_runs_machine`,
`script_results_run`, the partial `script_runs_running` and `script_results_trouble`), so its
cost does not grow with the fleet: the agent's calls must stay cheap with 1,000 machines.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebox.domain.script_runs import ScriptResult, ScriptRun
from edgebox.storage import runs_sql as sql
from edgebox.storage.database import Database


@dataclass(frozen=True, slots=True)
class FleetSummary:
    statuses: dict[str, int]
    running_runs: int
    troubles: list[tuple[str, str, int]]  # (script, status, machines)


class RunReads:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def running_runs(self) -> list[tuple[ScriptRun, str, list[ScriptResult]]]:
        """Every run in flight, with its machine's system_id and its running results."""
        rows = await self._db.fetchall(
            f"SELECT {', '.join('r.' + c.strip() for c in sql.RUN_COLUMNS.split(','))}, "
            "m.system_id FROM script_runs r JOIN machines m ON m.id = r.machine_id "
            "WHERE r.state = 'running'"
        )
        found = []
        for row in rows:
            run = sql.run_from_row(row)
            results = await self._db.fetchall(
                f"SELECT {sql.RESULT_COLUMNS} FROM script_results WHERE run_id = ? "
                "AND status = 'running'",
                (run.id,),
            )
            found.append((run, str(row[7]), [sql.result_from_row(r) for r in results]))
        return found

    async def plan(self, run_id: int) -> list[ScriptResult]:
        """The run's results an agent may start now: pending ones, placeholders excluded."""
        rows = await self._db.fetchall(
            f"SELECT {sql.RESULT_COLUMNS} FROM script_results WHERE run_id = ? "
            "AND status = 'pending' AND expand = '' ORDER BY position, id",
            (run_id,),
        )
        return [sql.result_from_row(r) for r in rows]

    async def result(self, result_id: int) -> ScriptResult | None:
        row = await self._db.fetchone(
            f"SELECT {sql.RESULT_COLUMNS} FROM script_results WHERE id = ?", (result_id,)
        )
        return sql.result_from_row(row) if row else None

    async def run(self, run_id: int) -> ScriptRun | None:
        row = await self._db.fetchone(
            f"SELECT {sql.RUN_COLUMNS} FROM script_runs WHERE id = ?", (run_id,)
        )
        return sql.run_from_row(row) if row else None

    async def latest_run(self, machine_id: int) -> ScriptRun | None:
        row = await self._db.fetchone(
            f"SELECT {sql.RUN_COLUMNS} FROM script_runs WHERE machine_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (machine_id,),
        )
        return sql.run_from_row(row) if row else None

    async def runs_of(self, machine_id: int, limit: int) -> list[ScriptRun]:
        rows = await self._db.fetchall(
            f"SELECT {sql.RUN_COLUMNS} FROM script_runs WHERE machine_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (machine_id, limit),
        )
        return [sql.run_from_row(r) for r in rows]

    async def results(self, run_id: int) -> list[ScriptResult]:
        rows = await self._db.fetchall(
            f"SELECT {sql.RESULT_COLUMNS} FROM script_results WHERE run_id = ? "
            "ORDER BY position, id",
            (run_id,),
        )
        return [sql.result_from_row(r) for r in rows]

    async def output(self, result_id: int) -> dict[str, tuple[bytes, int]]:
        rows = await self._db.fetchall(
            "SELECT stream, data, size FROM script_output WHERE result_id = ?", (result_id,)
        )
        return {r[0]: (bytes(r[1]), int(r[2])) for r in rows}

    async def machine_status(self, machine_id: int) -> str | None:
        row = await self._db.fetchone("SELECT status FROM machines WHERE id = ?", (machine_id,))
        return str(row[0]) if row else None

    async def summary(self) -> FleetSummary:
        statuses = await self._db.fetchall("SELECT status, count(*) FROM machines GROUP BY status")
        running = await self._db.fetchone(
            "SELECT count(*) FROM script_runs WHERE state = 'running'"
        )
        troubles = await self._db.fetchall(
            "SELECT r.script_name, r.status, count(DISTINCT r.machine_id) FROM script_results r "
            "WHERE r.run_id IN (SELECT max(id) FROM script_runs GROUP BY machine_id) "
            "AND r.status IN ('failed', 'timedout', 'degraded') "
            "GROUP BY r.script_name, r.status ORDER BY 3 DESC, 1"
        )
        return FleetSummary(
            {str(r[0]): int(r[1]) for r in statuses},
            int(running[0]) if running else 0,
            [(str(r[0]), str(r[1]), int(r[2])) for r in troubles],
        )
