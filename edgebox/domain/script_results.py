"""Script results: their statuses, the moves between them, and what a finished run means.

Theory of operation
-------------------
A run (one commissioning or one test of a machine) is a list of results, one per script (or
per script and disk / NIC). Each result moves through

    pending --start--> running --done--> passed | failed | timedout | degraded | skipped

and any unfinished one can be aborted (a person aborted the run) or expired (the watchdog gave
up on a silent machine). `RESULT_TRANSITIONS[status][event]` is the whole story; a pair that is
not there raises `IllegalResultEvent` naming both, which the machine API answers with a 409.
Agents retry calls whose answers they lost, so a repeated `start` or `done` is accepted and
changes nothing (`SAME`), and output may still arrive after `done`.

The status a `done` lands on is `verdict()`: the overrun (`timed_out`) first, then what the
script's own result file said, then its exit code. `run_outcome()` turns a run's statuses into
"still going", "passed" or "failed" (any failed, timed-out or aborted result fails the run;
degraded and skipped ones do not).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from edgebox.domain.errors import EdgeboxError


class ResultStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    TIMEDOUT = "timedout"
    DEGRADED = "degraded"
    SKIPPED = "skipped"
    ABORTED = "aborted"


R = ResultStatus
UNFINISHED: Final = frozenset({R.PENDING, R.RUNNING})
FINISHED: Final = frozenset(ResultStatus) - UNFINISHED
# Results that make the run fail (and the machine land in Failed commissioning / testing).
FAILING: Final = frozenset({R.FAILED, R.TIMEDOUT, R.ABORTED})
# Results worth a line in the fleet summary.
TROUBLE: Final = frozenset({R.FAILED, R.TIMEDOUT, R.DEGRADED})
# What a script may say about itself in its result file.
REPORTABLE: Final = frozenset({R.PASSED, R.FAILED, R.DEGRADED, R.SKIPPED})


class ResultEvent(enum.StrEnum):
    START = "start"
    OUTPUT = "output"  # stdout or stderr uploaded
    RESULT_FILE = "result"  # the script's result file uploaded
    DONE = "done"
    ABORT = "abort"  # a person aborted the run
    EXPIRE = "expire"  # the watchdog gave up on the machine


class _Target(enum.Enum):
    SAME = "same"  # accepted; the status stays
    VERDICT = "verdict"  # decided by `verdict()`


SAME: Final = _Target.SAME
VERDICT: Final = _Target.VERDICT
E = ResultEvent

_FINISHED_ROW: Final[Mapping[ResultEvent, ResultStatus | _Target]] = {
    E.OUTPUT: SAME,  # late output is still worth keeping
    E.DONE: SAME,  # a retried done
    E.ABORT: SAME,  # a finished result keeps its verdict when the run is aborted
    E.EXPIRE: SAME,
}
RESULT_TRANSITIONS: Final[Mapping[ResultStatus, Mapping[ResultEvent, ResultStatus | _Target]]] = {
    R.PENDING: {E.START: R.RUNNING, E.ABORT: R.ABORTED, E.EXPIRE: R.ABORTED},
    R.RUNNING: {
        E.START: SAME,  # a retried start
        E.OUTPUT: SAME,
        E.RESULT_FILE: SAME,
        E.DONE: VERDICT,
        E.ABORT: R.ABORTED,
        E.EXPIRE: R.TIMEDOUT,
    },
    R.PASSED: _FINISHED_ROW,
    R.FAILED: _FINISHED_ROW,
    R.TIMEDOUT: _FINISHED_ROW,
    R.DEGRADED: _FINISHED_ROW,
    R.SKIPPED: _FINISHED_ROW,
    R.ABORTED: {E.ABORT: SAME, E.EXPIRE: SAME},
}

_WHY: Final[Mapping[ResultStatus, str]] = {
    R.PENDING: "it has not been started (call start first)",
    R.ABORTED: "its run was aborted",
}


class IllegalResultEvent(EdgeboxError):
    def __init__(self, status: ResultStatus, event: ResultEvent) -> None:
        why = _WHY.get(status, "it has already finished")
        super().__init__(f"cannot {event.value} a result that is {status.value}: {why}")
        self.status = status
        self.event = event


def next_status(status: ResultStatus, event: ResultEvent) -> ResultStatus | _Target:
    """The target of `event` from `status` (a status, `SAME` or `VERDICT`), or raise."""
    target = RESULT_TRANSITIONS[status].get(event)
    if target is None:
        raise IllegalResultEvent(status, event)
    return target


def verdict(exit_code: int | None, timed_out: bool, reported: ResultStatus | None) -> ResultStatus:
    """How a finished script did: an overrun is timedout whatever else it said; otherwise the
    status its result file reported overrides the exit code's verdict."""
    if timed_out:
        return R.TIMEDOUT
    if reported is not None:
        return reported
    return R.PASSED if exit_code == 0 else R.FAILED


class RunOutcome(enum.StrEnum):
    UNFINISHED = "unfinished"
    PASSED = "passed"
    FAILED = "failed"


def run_outcome(statuses: Iterable[ResultStatus]) -> RunOutcome:
    seen = list(statuses)
    if any(s in UNFINISHED for s in seen):
        return RunOutcome.UNFINISHED
    if any(s in FAILING for s in seen):
        return RunOutcome.FAILED
    return RunOutcome.PASSED


# -- the result file -------------------------------------------------------------------------


class ResultFileError(EdgeboxError):
    """The script's result file is not what §3 of the contract describes."""


@dataclass(frozen=True, slots=True)
class ReportedResult:
    status: ResultStatus | None = None
    results: Mapping[str, Any] = field(default_factory=dict)


MAX_RESULT_KEYS: Final = 256


def parse_result_file(data: object) -> ReportedResult:
    """Check the decoded result file: `{status: passed|failed|degraded|skipped, results: {...}}`.

    An empty file is an empty report. Values that JSON cannot hold (YAML dates, say) become
    text, so the results map can always be stored and shown.
    """
    if data is None:
        return ReportedResult()
    if not isinstance(data, Mapping):
        raise ResultFileError(f"expected a mapping with status and results, got {_kind(data)}")
    unknown = sorted(str(k) for k in data if k not in ("status", "results"))
    if unknown:
        raise ResultFileError(f"{unknown[0]}: unknown key (known keys: status, results)")
    status = None
    if data.get("status") is not None:
        try:
            status = ResultStatus(data["status"])
        except ValueError:
            status = None
        if status not in REPORTABLE:
            allowed = ", ".join(sorted(s.value for s in REPORTABLE))
            raise ResultFileError(f"status: expected one of {allowed}, got {data['status']!r}")
    results = data.get("results") or {}
    if not isinstance(results, Mapping):
        raise ResultFileError(
            f"results: expected a mapping of keys to values, got {_kind(results)}"
        )
    if len(results) > MAX_RESULT_KEYS:
        raise ResultFileError(f"results: at most {MAX_RESULT_KEYS} keys, got {len(results)}")
    return ReportedResult(status, {str(k): _plain(v) for k, v in results.items()})


def _plain(value: object) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value!r:.40})"


# -- checks the server adds --------------------------------------------------------------------

GPU_PRESENCE: Final = "gpu-presence"


def check_gpu_presence(
    status: ResultStatus, results: Mapping[str, Any], inventory_gpus: int | None
) -> tuple[ResultStatus, str]:
    """Compare the GPUs the test saw with the inventory's count.

    Fewer than the inventory holds: a GPU fell off the bus or its driver cannot reach it, so
    the result fails. More: the inventory is older than the hardware (a card was added), which
    is worth a look but is no fault, so the result is degraded. Returns the status and a note
    (empty when nothing changed).
    """
    if status is not R.PASSED or inventory_gpus is None:
        return status, ""
    seen = results.get("gpus_seen")
    if isinstance(seen, bool) or not isinstance(seen, int):
        return R.FAILED, f"the result has no gpus_seen count (got {seen!r})"
    if seen < inventory_gpus:
        return R.FAILED, f"{seen} GPU(s) seen, but the inventory lists {inventory_gpus}"
    if seen > inventory_gpus:
        return R.DEGRADED, (
            f"{seen} GPU(s) seen, more than the {inventory_gpus} in the inventory: "
            "commission the machine again to update it"
        )
    return status, ""


def silence_limit(heartbeat_timeout: float, grace: float, running_timeouts: Iterable[int]) -> float:
    """How long a machine may stay silent before the watchdog fails it.

    A script may run for its whole timeout without its agent calling (busybox `timeout` kills
    it at the end): while scripts run, the limit is the longest one's timeout plus `grace`, and
    never shorter than the heartbeat timeout. A script with no timeout (0) extends nothing.
    """
    longest = max((t for t in running_timeouts if t > 0), default=0)
    return max(heartbeat_timeout, longest + grace if longest else 0.0)
