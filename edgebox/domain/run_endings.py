"""How a run of scripts ends, and what that does to its machine.

A run ends when its last result finishes, when the watchdog gives up on a silent machine, or
when a person aborts it. The machine moves through the lifecycle table like any other action:
commissioning-passed / -failed, testing-passed / -failed. A machine that left the run's status
by other means meanwhile (marked broken, say) stays where it is; the run just closes.
The event says which scripts failed, so `edgebox events` alone tells why a machine is Failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edgebox.domain import lifecycle
from edgebox.domain.lifecycle import Action, LifecycleState, Status
from edgebox.domain.models import EventLevel, Machine, NewEvent
from edgebox.domain.script_results import FAILING, RunOutcome, run_outcome
from edgebox.domain.script_runs import RunKind, RunState, ScriptResult, ScriptRun

STATUS_OF_KIND: Final[Mapping[RunKind, Status]] = {
    RunKind.COMMISSIONING: Status.COMMISSIONING,
    RunKind.TESTING: Status.TESTING,
}
_OUTCOME_ACTIONS: Final[Mapping[RunKind, tuple[Action, Action]]] = {
    RunKind.COMMISSIONING: (Action.COMMISSIONING_PASSED, Action.COMMISSIONING_FAILED),
    RunKind.TESTING: (Action.TESTING_PASSED, Action.TESTING_FAILED),
}
MAX_NAMED: Final = 10


@dataclass(frozen=True, slots=True)
class Conclusion:
    """The machine's new lifecycle (None: leave it), the run's final state, and events."""

    lifecycle: LifecycleState | None
    state: RunState
    events: Sequence[NewEvent]


def result_label(result: ScriptResult) -> str:
    """`smartctl-validate on sda`, `cpu-stress`: a result as people name it."""
    where = result.device or result.interface
    return f"{result.name} on {where}" if where else result.name


def failures_text(results: Sequence[ScriptResult]) -> str:
    failing = [r for r in results if r.status in FAILING]
    named = ", ".join(f"{result_label(r)} ({r.status.value})" for r in failing[:MAX_NAMED])
    more = len(failing) - MAX_NAMED
    return named + (f" and {more} more" if more > 0 else "")


def conclude_run(machine: Machine, run: ScriptRun, results: Sequence[ScriptResult]) -> Conclusion:
    """The end of a run whose every result has finished."""
    outcome = run_outcome(r.status for r in results)
    assert outcome is not RunOutcome.UNFINISHED
    state = RunState.PASSED if outcome is RunOutcome.PASSED else RunState.FAILED
    if machine.status is not STATUS_OF_KIND[run.kind]:
        return Conclusion(None, state, [])
    passed, failed = _OUTCOME_ACTIONS[run.kind]
    action = passed if state is RunState.PASSED else failed
    after = lifecycle.apply(machine.lifecycle, action)
    if state is RunState.PASSED:
        why = f"all {len(results)} script result(s) passed"
    else:
        why = f"failed: {failures_text(results)}"
    event = _status_event(
        machine, after, run, action, why,
        level=EventLevel.INFO if state is RunState.PASSED else EventLevel.ERROR,
        failed=[result_label(r) for r in results if r.status in FAILING],
    )  # fmt: skip
    return Conclusion(after, state, [event])


def expire_run(
    machine: Machine, run: ScriptRun, results: Sequence[ScriptResult], reason: str
) -> Conclusion:
    """The watchdog's end of a run: the machine fails with `reason` in its event."""
    if machine.status is not STATUS_OF_KIND[run.kind]:
        return Conclusion(None, RunState.ABORTED, [])
    action = lifecycle.FAILURE_OF[machine.status]
    after = lifecycle.apply(machine.lifecycle, action)
    event = _status_event(
        machine, after, run, action, f"watchdog: {reason}", level=EventLevel.ERROR,
        failed=[result_label(r) for r in results if r.status in FAILING],
    )  # fmt: skip
    return Conclusion(after, RunState.FAILED, [event])


def _status_event(
    machine: Machine,
    after: LifecycleState,
    run: ScriptRun,
    action: Action,
    why: str,
    *,
    level: EventLevel,
    failed: list[str],
) -> NewEvent:
    data: dict[str, Any] = {
        "action": action.value,
        "from": machine.status.value,
        "to": after.status.value,
        "run": run.id,
        "kind": run.kind.value,
        "user": "edgebox",
    }
    if failed:
        data["failed"] = failed[:100]
    return NewEvent(
        "machine.status",
        f"{machine.hostname}: {machine.status.value} -> {after.status.value}: {why}",
        machine=machine.system_id,
        level=level,
        data=data,
    )
