"""The rolling-wave planner: waves of K, and the move a rollout makes from its states."""

from __future__ import annotations

import pytest

from edgebox.domain.deployment import DeployState
from edgebox.domain.rollout import Move, MoveKind, assign_waves, next_move

Q, R, S, F = DeployState.QUEUED, DeployState.RUNNING, DeployState.SUCCEEDED, DeployState.FAILED


def test_waves_of_k_and_all_at_once() -> None:
    assert assign_waves(7, 3) == [0, 0, 0, 1, 1, 1, 2]
    assert assign_waves(3, 0) == [0, 0, 0]
    assert assign_waves(0, 5) == []
    with pytest.raises(ValueError, match="cannot be negative"):
        assign_waves(3, -1)


def test_a_wave_in_flight_is_waited_for() -> None:
    assert next_move([(0, S), (0, R), (1, Q)], 0) == Move(MoveKind.WAIT)


def test_the_lowest_queued_wave_starts_when_nothing_runs() -> None:
    assert next_move([(0, S), (0, F), (2, Q), (1, Q)], 0) == Move(MoveKind.START, 1)
    assert next_move([(0, Q), (0, Q)], 5) == Move(MoveKind.START, 0)


def test_n_failures_stop_it_even_with_a_wave_in_flight() -> None:
    move = next_move([(0, F), (0, F), (1, R), (2, Q), (2, Q)], 2)
    assert move.kind is MoveKind.STOP
    assert move.reason == "2 deployment(s) failed (the limit is 2); 2 machine(s) not started"
    # One fewer failure: it goes on; 0 means never stop.
    assert next_move([(0, F), (0, S), (1, Q)], 2) == Move(MoveKind.START, 1)
    assert next_move([(0, F), (0, F), (1, Q)], 0) == Move(MoveKind.START, 1)


def test_done_when_nothing_is_queued_or_running() -> None:
    assert next_move([(0, S), (1, F), (1, DeployState.SKIPPED)], 1) == Move(MoveKind.DONE)
    assert next_move([], 0) == Move(MoveKind.DONE)
