"""The machine lifecycle: every status, every action, and the one table that joins them.

Theory of operation
-------------------
A machine is always in exactly one `Status`. Something happens to it — a person asks for an
`Action` (commission, deploy, lock, ...) or the system reports an outcome (commissioning passed,
the deploy failed, the watchdog fired) — and `apply()` looks the pair up in `TRANSITIONS`:

    TRANSITIONS[status][action] -> next status

A pair that is not in the table is illegal: `apply()` raises `IllegalTransition`, which names
the status and the action, and the API turns it into a 409. There is no other place that
decides a status change, so "can I deploy a Broken machine?" is answered by reading one table.

Two targets are not fixed statuses:
- `SAME`: the action keeps the status (tag, set-pool, power on, lock).
- `PREVIOUS`: the machine returns to the status it had before it entered this one (a test run
  on a Deployed machine returns it to Deployed; leaving rescue mode likewise). The caller keeps
  `previous_status` and passes it in.

`locked` is a flag beside the status, as in MAAS: a locked (Deployed) machine refuses every
action that would change it, except `unlock` and read-only ones.

Names and values follow MAAS's node statuses so that MAAS users read them without a glossary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


class Status(enum.StrEnum):
    NEW = "new"
    COMMISSIONING = "commissioning"
    FAILED_COMMISSIONING = "failed_commissioning"
    READY = "ready"
    ALLOCATED = "allocated"
    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    FAILED_DEPLOYMENT = "failed_deployment"
    RELEASING = "releasing"
    FAILED_RELEASING = "failed_releasing"
    DISK_ERASING = "disk_erasing"
    FAILED_DISK_ERASING = "failed_disk_erasing"
    TESTING = "testing"
    FAILED_TESTING = "failed_testing"
    RESCUE_MODE = "rescue_mode"
    BROKEN = "broken"


class Action(enum.StrEnum):
    # Asked for by a person or a program through the API.
    COMMISSION = "commission"
    TEST = "test"
    ABORT = "abort"
    ALLOCATE = "allocate"
    DEPLOY = "deploy"
    RELEASE = "release"
    POWER_ON = "power-on"
    POWER_OFF = "power-off"
    POWER_CYCLE = "power-cycle"
    MARK_BROKEN = "mark-broken"
    MARK_FIXED = "mark-fixed"
    RESCUE = "rescue"
    EXIT_RESCUE = "exit-rescue"
    LOCK = "lock"
    UNLOCK = "unlock"
    TAG = "tag"
    SET_POOL = "set-pool"
    SET_ZONE = "set-zone"
    DELETE = "delete"
    # Reported by the system: the outcome of a busy state (agent, power queue, watchdog).
    COMMISSIONING_PASSED = "commissioning-passed"
    COMMISSIONING_FAILED = "commissioning-failed"
    TESTING_PASSED = "testing-passed"
    TESTING_FAILED = "testing-failed"
    DEPLOY_SUCCEEDED = "deploy-succeeded"
    DEPLOY_FAILED = "deploy-failed"
    ERASE_STARTED = "erase-started"
    RELEASE_SUCCEEDED = "release-succeeded"
    RELEASE_FAILED = "release-failed"
    ERASE_SUCCEEDED = "erase-succeeded"
    ERASE_FAILED = "erase-failed"


class _Target(enum.Enum):
    SAME = "same"
    PREVIOUS = "previous"


SAME: Final = _Target.SAME
PREVIOUS: Final = _Target.PREVIOUS

Target = Status | _Target

S = Status
A = Action

# Statuses in which edgebox (or the machine's agent) is working on the machine. The watchdog
# fails a machine that stays silent in one of these past its timeout.
BUSY_STATUSES: Final = frozenset(
    {S.COMMISSIONING, S.TESTING, S.DEPLOYING, S.RELEASING, S.DISK_ERASING}
)

# What the watchdog (or an agent's failure report) does to each busy status.
FAILURE_OF: Final[Mapping[Status, Action]] = {
    S.COMMISSIONING: A.COMMISSIONING_FAILED,
    S.TESTING: A.TESTING_FAILED,
    S.DEPLOYING: A.DEPLOY_FAILED,
    S.RELEASING: A.RELEASE_FAILED,
    S.DISK_ERASING: A.ERASE_FAILED,
}

# Actions that change nothing but attributes and are allowed in every status.
_ANYWHERE: Final[Mapping[Action, Target]] = {
    A.TAG: SAME,
    A.SET_POOL: SAME,
    A.SET_ZONE: SAME,
    A.DELETE: SAME,
}
# Power can be driven by hand in every status but the busy ones, where edgebox drives it.
_POWER: Final[Mapping[Action, Target]] = {
    A.POWER_ON: SAME,
    A.POWER_OFF: SAME,
    A.POWER_CYCLE: SAME,
}
# The ways into commissioning / testing / rescue, shared by the resting statuses.
_RECOVER: Final[Mapping[Action, Target]] = {
    A.COMMISSION: S.COMMISSIONING,
    A.TEST: S.TESTING,
    A.MARK_BROKEN: S.BROKEN,
    A.RESCUE: S.RESCUE_MODE,
}


def _row(*parts: Mapping[Action, Target], **extra: Target) -> dict[Action, Target]:
    row: dict[Action, Target] = {}
    for part in parts:
        row.update(part)
    for name, target in extra.items():
        row[Action[name]] = target
    return row


TRANSITIONS: Final[Mapping[Status, Mapping[Action, Target]]] = {
    S.NEW: _row(_ANYWHERE, _POWER, COMMISSION=S.COMMISSIONING, MARK_BROKEN=S.BROKEN),
    S.COMMISSIONING: _row(
        _ANYWHERE,
        ABORT=PREVIOUS,
        MARK_BROKEN=S.BROKEN,
        COMMISSIONING_PASSED=S.READY,
        COMMISSIONING_FAILED=S.FAILED_COMMISSIONING,
    ),
    S.FAILED_COMMISSIONING: _row(_ANYWHERE, _POWER, _RECOVER),
    S.READY: _row(_ANYWHERE, _POWER, _RECOVER, ALLOCATE=S.ALLOCATED, DEPLOY=S.DEPLOYING),
    S.ALLOCATED: _row(
        _ANYWHERE,
        _POWER,
        DEPLOY=S.DEPLOYING,
        RELEASE=S.READY,
        MARK_BROKEN=S.BROKEN,
        RESCUE=S.RESCUE_MODE,
    ),
    S.DEPLOYING: _row(
        _ANYWHERE,
        ABORT=S.ALLOCATED,
        MARK_BROKEN=S.BROKEN,
        DEPLOY_SUCCEEDED=S.DEPLOYED,
        DEPLOY_FAILED=S.FAILED_DEPLOYMENT,
    ),
    S.DEPLOYED: _row(
        _ANYWHERE,
        _POWER,
        RELEASE=S.RELEASING,
        TEST=S.TESTING,
        RESCUE=S.RESCUE_MODE,
        MARK_BROKEN=S.BROKEN,
        LOCK=SAME,
        UNLOCK=SAME,
    ),
    S.FAILED_DEPLOYMENT: _row(_ANYWHERE, _POWER, _RECOVER, RELEASE=S.RELEASING),
    S.RELEASING: _row(
        _ANYWHERE,
        MARK_BROKEN=S.BROKEN,
        ERASE_STARTED=S.DISK_ERASING,
        RELEASE_SUCCEEDED=S.READY,
        RELEASE_FAILED=S.FAILED_RELEASING,
    ),
    S.FAILED_RELEASING: _row(_ANYWHERE, _POWER, _RECOVER, RELEASE=S.RELEASING),
    S.DISK_ERASING: _row(
        _ANYWHERE,
        ABORT=S.FAILED_DISK_ERASING,
        MARK_BROKEN=S.BROKEN,
        ERASE_SUCCEEDED=S.READY,
        ERASE_FAILED=S.FAILED_DISK_ERASING,
    ),
    S.FAILED_DISK_ERASING: _row(_ANYWHERE, _POWER, _RECOVER, RELEASE=S.RELEASING),
    S.TESTING: _row(
        _ANYWHERE,
        ABORT=PREVIOUS,
        MARK_BROKEN=S.BROKEN,
        TESTING_PASSED=PREVIOUS,
        TESTING_FAILED=S.FAILED_TESTING,
    ),
    S.FAILED_TESTING: _row(_ANYWHERE, _POWER, _RECOVER),
    S.RESCUE_MODE: _row(_ANYWHERE, _POWER, EXIT_RESCUE=PREVIOUS, MARK_BROKEN=S.BROKEN),
    S.BROKEN: _row(
        _ANYWHERE,
        _POWER,
        COMMISSION=S.COMMISSIONING,
        TEST=S.TESTING,
        RESCUE=S.RESCUE_MODE,
        MARK_FIXED=S.READY,
    ),
}

# A locked machine refuses everything but these (MAAS: lock protects a running deployment, and
# only a Deployed machine can be locked). Outcomes reported by the system are never refused.
ALLOWED_WHILE_LOCKED: Final = frozenset({A.UNLOCK, A.TAG, A.POWER_ON})

# Actions that only the system reports; the API refuses them from users.
SYSTEM_ACTIONS: Final = frozenset(
    {
        A.COMMISSIONING_PASSED,
        A.COMMISSIONING_FAILED,
        A.TESTING_PASSED,
        A.TESTING_FAILED,
        A.DEPLOY_SUCCEEDED,
        A.DEPLOY_FAILED,
        A.ERASE_STARTED,
        A.RELEASE_SUCCEEDED,
        A.RELEASE_FAILED,
        A.ERASE_SUCCEEDED,
        A.ERASE_FAILED,
    }
)
USER_ACTIONS: Final = frozenset(Action) - SYSTEM_ACTIONS


def statuses_allowing(action: Action) -> list[Status]:
    """The statuses in which `action` is legal (an unlocked machine), in table order."""
    return [status for status, row in TRANSITIONS.items() if action in row]


class IllegalTransition(Exception):
    """An action that the lifecycle does not allow from the machine's current state."""

    def __init__(self, status: Status, action: Action, reason: str) -> None:
        super().__init__(f"cannot {action.value} a machine that is {status.value}: {reason}")
        self.status = status
        self.action = action
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LifecycleState:
    """The part of a machine that the lifecycle reads."""

    status: Status
    previous_status: Status | None = None
    locked: bool = False


def apply(state: LifecycleState, action: Action) -> LifecycleState:
    """Return the state after `action`, or raise `IllegalTransition` naming status and action."""
    if state.locked and action not in ALLOWED_WHILE_LOCKED and action not in SYSTEM_ACTIONS:
        raise IllegalTransition(state.status, action, "it is locked; unlock it first")
    target = TRANSITIONS[state.status].get(action)
    if target is None:
        allowed = ", ".join(sorted(a.value for a in TRANSITIONS[state.status] if a in USER_ACTIONS))
        raise IllegalTransition(
            state.status, action, f"allowed actions in this status are: {allowed}"
        )
    locked = _locked_after(state, action)
    if target is SAME:
        return LifecycleState(state.status, state.previous_status, locked)
    if target is PREVIOUS:
        back = state.previous_status or Status.NEW
        return LifecycleState(back, None, locked)
    assert isinstance(target, Status)
    return LifecycleState(target, state.status, locked)


def _locked_after(state: LifecycleState, action: Action) -> bool:
    if action is A.LOCK:
        if state.locked:
            raise IllegalTransition(state.status, action, "it is already locked")
        return True
    if action is A.UNLOCK:
        if not state.locked:
            raise IllegalTransition(state.status, action, "it is not locked")
        return False
    return state.locked
