"""The watchdog of commissioning and testing: no machine stays in a run forever.

Every call of a machine's agent is a sign of life. A run whose machine has been silent longer
than its limit is failed (Failed commissioning / Failed testing) with an event that says why:
never heard from at all ("is it powered on and network-booting?") or silent since its last
call. The limit is the configured timeout, or while scripts run, the longest running script's
own timeout plus a grace period, whichever is longer (`silence_limit`).

Signs of life are kept in memory, not written: 1,000 agents calling every few seconds must not
cost a write each. After a restart every run in flight gets a full limit again from the start
of the process (`load`), so a restart can delay a verdict but never lose one. The database
stays the authority: `RunStore.expire` re-checks the run and the machine in its transaction,
so a run that ended meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgebox.domain.commissioning_settings import CommissioningSettings
from edgebox.domain.models import Machine
from edgebox.domain.run_endings import Conclusion, expire_run
from edgebox.domain.script_results import silence_limit
from edgebox.domain.script_runs import RunKind, ScriptResult, ScriptRun
from edgebox.services.clock import Clock
from edgebox.storage.run_store import RunStore

log = logging.getLogger(__name__)

TICK = 5.0


@dataclass(slots=True)
class RunWatch:
    run_id: int
    machine_id: int
    system_id: str
    kind: RunKind
    since: float  # monotonic: when the watch began (the run's start, or this process's)
    last_seen: float | None = None  # monotonic: the agent's last call
    running: dict[int, int] = field(default_factory=dict)  # result id -> its timeout (s)
    resumed: bool = False  # watched again after a restart of edgebox


class CommissioningWatchdog:
    def __init__(self, settings: CommissioningSettings, *, runs: RunStore, clock: Clock) -> None:
        self._settings = settings
        self._runs = runs
        self._clock = clock
        self._by_run: dict[int, RunWatch] = {}
        self._by_machine: dict[int, RunWatch] = {}

    # -- what the services tell it ---------------------------------------------------------

    async def load(self) -> int:
        """Watch every run left in flight by a previous process; return how many."""
        for run, system_id, running in await self._runs.running_runs():
            self.watch(run, system_id, running, resumed=True)
        if self._by_run:
            log.info("watchdog: resumed watching %d run(s) in flight", len(self._by_run))
        return len(self._by_run)

    def watch(
        self,
        run: ScriptRun,
        system_id: str,
        running: Sequence[ScriptResult] = (),
        *,
        resumed: bool = False,
    ) -> None:
        old = self._by_machine.get(run.machine_id)
        if old is not None:
            self._by_run.pop(old.run_id, None)
        watch = RunWatch(
            run.id,
            run.machine_id,
            system_id,
            run.kind,
            since=self._clock.monotonic(),
            running={r.id: r.timeout for r in running},
            resumed=resumed,
        )
        self._by_run[run.id] = watch
        self._by_machine[run.machine_id] = watch

    def forget(self, run_id: int) -> None:
        watch = self._by_run.pop(run_id, None)
        if watch is not None and self._by_machine.get(watch.machine_id) is watch:
            del self._by_machine[watch.machine_id]

    def touch(self, machine_id: int) -> None:
        watch = self._by_machine.get(machine_id)
        if watch is not None:
            watch.last_seen = self._clock.monotonic()

    def started(self, run_id: int, result_id: int, timeout: int) -> None:
        watch = self._by_run.get(run_id)
        if watch is not None:
            watch.running[result_id] = timeout

    def finished(self, run_id: int, result_ids: Sequence[int]) -> None:
        watch = self._by_run.get(run_id)
        if watch is not None:
            for result_id in result_ids:
                watch.running.pop(result_id, None)

    def active(self, machine_id: int) -> RunWatch | None:
        return self._by_machine.get(machine_id)

    @property
    def watched(self) -> int:
        return len(self._by_run)

    # -- the check -------------------------------------------------------------------------

    def overdue(self, now: float) -> list[tuple[RunWatch, str]]:
        """The runs whose machine has been silent past its limit, with the reason."""
        found = []
        for watch in self._by_run.values():
            limit = silence_limit(
                self._settings.timeout, self._settings.grace, watch.running.values()
            )
            if watch.last_seen is None:
                if now - watch.since >= limit:
                    found.append((watch, _never_heard(watch, now - watch.since)))
            elif now - watch.last_seen >= limit:
                found.append((watch, _went_silent(watch, now - watch.last_seen, limit)))
        return found

    async def check(self) -> list[Machine]:
        """Fail the overdue runs now; return the machines that were failed."""
        failed = []
        for watch, reason in self.overdue(self._clock.monotonic()):
            self.forget(watch.run_id)

            def conclude(
                machine: Machine,
                run: ScriptRun,
                results: list[ScriptResult],
                reason: str = reason,
            ) -> Conclusion:
                return expire_run(machine, run, results, reason)

            ended = await self._runs.expire(watch.run_id, conclude, f"watchdog: {reason}")
            if ended is not None and ended.machine is not None:
                log.warning(
                    "watchdog failed a run run=%d system_id=%s reason=%s",
                    watch.run_id,
                    watch.system_id,
                    reason,
                )
                failed.append(ended.machine)
        return failed

    async def run(self) -> None:
        """Check every TICK seconds until cancelled; an error is logged, never fatal."""
        await self.load()
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.check()
            except Exception:
                log.exception("watchdog check failed; trying again in %.0f s", TICK)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _never_heard(watch: RunWatch, waited: float) -> str:
    since = "edgebox restarted" if watch.resumed else f"{watch.kind.value} started"
    return (
        f"no call from the machine's agent in the {_minutes(waited)} since {since} "
        "(is the machine powered on and network-booting?)"
    )


def _went_silent(watch: RunWatch, silent: float, limit: float) -> str:
    scripts = f"; {len(watch.running)} script(s) were running" if watch.running else ""
    return (
        f"the machine's agent has been silent for {_minutes(silent)} "
        f"(limit {_minutes(limit)}){scripts}"
    )
