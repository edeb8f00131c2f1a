"""Result state rules: the transition table, the verdict of a finished script, a run's outcome,
the result file, the GPU check and the watchdog's silence limit."""

from __future__ import annotations

import datetime
import itertools

import pytest

from edgebox.domain.script_results import (
    FINISHED,
    RESULT_TRANSITIONS,
    SAME,
    VERDICT,
    IllegalResultEvent,
    ReportedResult,
    ResultEvent,
    ResultFileError,
    ResultStatus,
    RunOutcome,
    check_gpu_presence,
    next_status,
    parse_result_file,
    run_outcome,
    silence_limit,
    verdict,
)

R = ResultStatus
E = ResultEvent

# Every legal move, written out independently of the table: "status event -> target", where
# "=" keeps the status and "?" is decided by the verdict. Anything not here must be refused.
SPEC = """
pending start -> running
pending abort -> aborted
pending expire -> aborted
running start -> =
running output -> =
running result -> =
running done -> ?
running abort -> aborted
running expire -> timedout
aborted abort -> =
aborted expire -> =
"""
for _finished in ("passed", "failed", "timedout", "degraded", "skipped"):
    SPEC += "".join(f"{_finished} {e} -> =\n" for e in ("output", "done", "abort", "expire"))


def _spec() -> dict[tuple[R, E], object]:
    moves: dict[tuple[R, E], object] = {}
    for line in SPEC.strip().splitlines():
        left, target = line.split(" -> ")
        status, event = left.split()
        moves[R(status), E(event)] = {"=": SAME, "?": VERDICT}.get(target) or R(target)
    return moves


def test_the_whole_table_matches_the_spec() -> None:
    spec = _spec()
    for status, event in itertools.product(ResultStatus, ResultEvent):
        expected = spec.get((status, event))
        if expected is None:
            with pytest.raises(IllegalResultEvent) as caught:
                next_status(status, event)
            assert f"cannot {event.value} a result that is {status.value}" in str(caught.value)
        else:
            assert next_status(status, event) == expected, (status, event)
    assert set(RESULT_TRANSITIONS) == set(ResultStatus)


def test_refusals_say_why() -> None:
    with pytest.raises(IllegalResultEvent, match="call start first"):
        next_status(R.PENDING, E.DONE)
    with pytest.raises(IllegalResultEvent, match="its run was aborted"):
        next_status(R.ABORTED, E.START)
    with pytest.raises(IllegalResultEvent, match="it has already finished"):
        next_status(R.PASSED, E.START)


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "reported", "expected"),
    [
        (0, False, None, R.PASSED),
        (1, False, None, R.FAILED),
        (None, False, None, R.FAILED),  # killed, no exit status
        (137, True, None, R.TIMEDOUT),
        (0, True, R.PASSED, R.TIMEDOUT),  # an overrun is an overrun, whatever it wrote
        (1, False, R.PASSED, R.PASSED),  # the result file overrides the exit code
        (0, False, R.FAILED, R.FAILED),
        (0, False, R.DEGRADED, R.DEGRADED),
        (0, False, R.SKIPPED, R.SKIPPED),
    ],
)
def test_verdict(
    exit_code: int | None, timed_out: bool, reported: ResultStatus | None, expected: ResultStatus
) -> None:
    assert verdict(exit_code, timed_out, reported) is expected


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        ([], RunOutcome.PASSED),
        ([R.PASSED, R.SKIPPED, R.DEGRADED], RunOutcome.PASSED),
        ([R.PASSED, R.PENDING], RunOutcome.UNFINISHED),
        ([R.FAILED, R.RUNNING], RunOutcome.UNFINISHED),
        ([R.PASSED, R.FAILED], RunOutcome.FAILED),
        ([R.TIMEDOUT, R.PASSED], RunOutcome.FAILED),
        ([R.ABORTED], RunOutcome.FAILED),
    ],
)
def test_run_outcome(statuses: list[ResultStatus], outcome: RunOutcome) -> None:
    assert run_outcome(statuses) is outcome


def test_every_finished_status_ends_a_run() -> None:
    for status in FINISHED:
        assert run_outcome([status]) is not RunOutcome.UNFINISHED


def test_result_files() -> None:
    assert parse_result_file(None) == ReportedResult()
    parsed = parse_result_file(
        {"status": "degraded", "results": {"mb": 12.5, "n": 3, "when": datetime.date(2026, 1, 2),
                                           "inf": float("inf"), "list": [1, {"a": None}]}}
    )  # fmt: skip
    assert parsed.status is R.DEGRADED
    assert dict(parsed.results) == {
        "mb": 12.5, "n": 3, "when": "2026-01-02", "inf": "inf", "list": [1, {"a": None}],
    }  # fmt: skip
    assert parse_result_file({"results": {}}).status is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("passed", "expected a mapping with status and results, got a str"),
        ([1], "got a list"),
        ({"status": "running"}, "status: expected one of degraded, failed, passed, skipped"),
        ({"status": "aborted"}, "got 'aborted'"),
        ({"results": [1, 2]}, "results: expected a mapping of keys to values, got a list"),
        ({"result": {}}, "result: unknown key (known keys: status, results)"),
        ({"results": {str(i): i for i in range(300)}}, "at most 256 keys"),
    ],
)
def test_bad_result_files(data: object, problem: str) -> None:
    with pytest.raises(ResultFileError) as caught:
        parse_result_file(data)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("status", "results", "inventory", "expected", "note"),
    [
        (R.PASSED, {"gpus_seen": 2}, 2, R.PASSED, ""),
        (R.PASSED, {"gpus_seen": 1}, 2, R.FAILED, "1 GPU(s) seen, but the inventory lists 2"),
        (R.PASSED, {"gpus_seen": 3}, 2, R.DEGRADED, "more than the 2 in the inventory"),
        (R.PASSED, {}, 2, R.FAILED, "the result has no gpus_seen count"),
        (R.PASSED, {"gpus_seen": True}, 1, R.FAILED, "no gpus_seen count"),
        (R.PASSED, {"gpus_seen": 0}, None, R.PASSED, ""),  # no inventory of GPUs to compare
        (R.FAILED, {"gpus_seen": 9}, 2, R.FAILED, ""),  # already failed: left alone
    ],
)
def test_gpu_presence(
    status: ResultStatus,
    results: dict[str, object],
    inventory: int | None,
    expected: ResultStatus,
    note: str,
) -> None:
    got, why = check_gpu_presence(status, results, inventory)
    assert got is expected
    assert note in why and (why == "") == (note == "")


def test_silence_limit() -> None:
    assert silence_limit(1800, 300, []) == 1800
    assert silence_limit(1800, 300, [60, 120]) == 1800  # short scripts: the heartbeat limit
    assert silence_limit(1800, 300, [3600, 60]) == 3900  # the longest script's, plus grace
    assert silence_limit(1800, 300, [0]) == 1800  # no timeout extends nothing
