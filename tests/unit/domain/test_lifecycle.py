"""The whole (status, action) matrix, checked against a spec written out independently here."""

from __future__ import annotations

import itertools

import pytest

from edgebox.domain.lifecycle import (
    TRANSITIONS,
    Action,
    IllegalTransition,
    LifecycleState,
    Status,
    apply,
)

# Every allowed move, one line each: "status action -> target". "=" keeps the status and "<"
# returns to the previous one. Anything not listed here must be refused.
SPEC = """
new commission -> commissioning
new mark-broken -> broken
commissioning abort -> <
commissioning mark-broken -> broken
commissioning commissioning-passed -> ready
commissioning commissioning-failed -> failed_commissioning
failed_commissioning commission -> commissioning
failed_commissioning test -> testing
failed_commissioning mark-broken -> broken
failed_commissioning rescue -> rescue_mode
ready commission -> commissioning
ready test -> testing
ready mark-broken -> broken
ready rescue -> rescue_mode
ready allocate -> allocated
ready deploy -> deploying
allocated deploy -> deploying
allocated release -> ready
allocated mark-broken -> broken
allocated rescue -> rescue_mode
deploying abort -> allocated
deploying mark-broken -> broken
deploying deploy-succeeded -> deployed
deploying deploy-failed -> failed_deployment
deployed release -> releasing
deployed test -> testing
deployed rescue -> rescue_mode
deployed mark-broken -> broken
deployed lock -> =
failed_deployment commission -> commissioning
failed_deployment test -> testing
failed_deployment mark-broken -> broken
failed_deployment rescue -> rescue_mode
failed_deployment release -> releasing
releasing mark-broken -> broken
releasing erase-started -> disk_erasing
releasing release-succeeded -> ready
releasing release-failed -> failed_releasing
failed_releasing commission -> commissioning
failed_releasing test -> testing
failed_releasing mark-broken -> broken
failed_releasing rescue -> rescue_mode
failed_releasing release -> releasing
disk_erasing abort -> failed_disk_erasing
disk_erasing mark-broken -> broken
disk_erasing erase-succeeded -> ready
disk_erasing erase-failed -> failed_disk_erasing
failed_disk_erasing commission -> commissioning
failed_disk_erasing test -> testing
failed_disk_erasing mark-broken -> broken
failed_disk_erasing rescue -> rescue_mode
failed_disk_erasing release -> releasing
testing abort -> <
testing mark-broken -> broken
testing testing-passed -> <
testing testing-failed -> failed_testing
failed_testing commission -> commissioning
failed_testing test -> testing
failed_testing mark-broken -> broken
failed_testing rescue -> rescue_mode
rescue_mode exit-rescue -> <
rescue_mode mark-broken -> broken
broken commission -> commissioning
broken test -> testing
broken rescue -> rescue_mode
broken mark-fixed -> ready
"""
BUSY = {"commissioning", "testing", "deploying", "releasing", "disk_erasing"}
EVERYWHERE = ["tag", "set-pool", "set-zone", "delete"]
POWER = ["power-on", "power-off", "power-cycle"]


def _expected() -> dict[tuple[Status, Action], str]:
    table: dict[tuple[Status, Action], str] = {}
    for line in SPEC.strip().splitlines():
        left, target = line.split(" -> ")
        status, action = left.split()
        table[Status(status), Action(action)] = target
    for status in Status:
        for action in EVERYWHERE:
            table[status, Action(action)] = "="
        if status.value not in BUSY:
            for action in POWER:
                table[status, Action(action)] = "="
    return table


EXPECTED = _expected()
ALL_PAIRS = list(itertools.product(Status, Action))


def test_spec_and_table_name_the_same_pairs() -> None:
    in_table = {(s, a) for s, row in TRANSITIONS.items() for a in row}
    in_table.discard((Status.DEPLOYED, Action.UNLOCK))  # only reachable while locked
    assert in_table == set(EXPECTED)


@pytest.mark.parametrize(("status", "action"), ALL_PAIRS, ids=str)
def test_every_pair(status: Status, action: Action) -> None:
    state = LifecycleState(status, previous_status=Status.DEPLOYED)
    target = EXPECTED.get((status, action))
    if target is None:
        with pytest.raises(IllegalTransition) as info:
            apply(state, action)
        assert status.value in str(info.value) and action.value in str(info.value)
        return
    after = apply(state, action)
    if target == "=":
        assert after.status is status
    elif target == "<":
        assert after.status is Status.DEPLOYED
        assert after.previous_status is None
    else:
        assert after.status is Status(target)
        assert after.previous_status is status


def test_previous_defaults_to_new_when_unknown() -> None:
    assert apply(LifecycleState(Status.COMMISSIONING), Action.ABORT).status is Status.NEW


def test_lock_and_unlock() -> None:
    locked = apply(LifecycleState(Status.DEPLOYED), Action.LOCK)
    assert locked.locked and locked.status is Status.DEPLOYED
    with pytest.raises(IllegalTransition, match="locked; unlock it first"):
        apply(locked, Action.RELEASE)
    with pytest.raises(IllegalTransition, match="locked"):
        apply(locked, Action.LOCK)
    assert apply(locked, Action.TAG).locked
    unlocked = apply(locked, Action.UNLOCK)
    assert not unlocked.locked
    assert apply(unlocked, Action.RELEASE).status is Status.RELEASING


def test_unlock_needs_a_lock() -> None:
    with pytest.raises(IllegalTransition, match="not locked"):
        apply(LifecycleState(Status.DEPLOYED), Action.UNLOCK)


@pytest.mark.parametrize("action", ["delete", "set-pool", "power-off", "mark-broken", "release"])
def test_locked_refuses_changes(action: str) -> None:
    with pytest.raises(IllegalTransition, match="unlock it first"):
        apply(LifecycleState(Status.DEPLOYED, locked=True), Action(action))


def test_system_outcomes_are_not_refused_by_a_lock() -> None:
    state = LifecycleState(Status.TESTING, previous_status=Status.DEPLOYED, locked=True)
    assert apply(state, Action.TESTING_PASSED) == LifecycleState(Status.DEPLOYED, None, True)


def test_error_lists_allowed_actions() -> None:
    with pytest.raises(IllegalTransition) as info:
        apply(LifecycleState(Status.NEW), Action.DEPLOY)
    assert "cannot deploy a machine that is new" in str(info.value)
    assert "commission" in info.value.reason and "deploy-failed" not in info.value.reason
