"""A lifecycle move of a machine and the event that tells it, as deploys and releases make them.

The same shape as the moves of the machine and commissioning services (`machine.status`,
with the user, the action and both statuses in its data), so a UI or the hub reads a deploy's
"allocated -> deploying" like a commissioning's "new -> commissioning". A release may make two
moves in one transaction (Deployed -> Releasing -> Disk erasing): pass the state after the
first as `state` for the second.
"""

from __future__ import annotations

from typing import Any

from edgebox.domain import lifecycle
from edgebox.domain.lifecycle import SYSTEM_ACTIONS, Action, LifecycleState
from edgebox.domain.models import EventLevel, Machine, NewEvent


def move(
    machine: Machine,
    action: Action,
    actor: str,
    note: str = "",
    *,
    state: LifecycleState | None = None,
    level: EventLevel = EventLevel.INFO,
    data: dict[str, Any] | None = None,
) -> tuple[LifecycleState, NewEvent]:
    """The state after `action` (IllegalTransition if not allowed) and its event."""
    before = state or machine.lifecycle
    after = lifecycle.apply(before, action)
    who = action.value if action in SYSTEM_ACTIONS else f"{action.value} by {actor}"
    message = f"{machine.hostname}: {before.status.value} -> {after.status.value} ({who}"
    message += f": {note})" if note else ")"
    event = NewEvent(
        "machine.status",
        message,
        machine=machine.system_id,
        level=level,
        data={
            "user": actor,
            "action": action.value,
            "from": before.status.value,
            "to": after.status.value,
            **({"note": note} if note else {}),
            **(data or {}),
        },
    )
    return after, event
