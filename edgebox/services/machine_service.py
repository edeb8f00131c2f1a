"""Machines: create, read, change and delete them, and apply lifecycle actions.

Every change is decided by a pure function of the machine as it is inside the write
transaction (see `MachineStore.change`), so a concurrent change can never be lost between the
check and the write, and the events that describe the change commit with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain import lifecycle
from edgebox.domain.errors import InvalidInput
from edgebox.domain.identifiers import check_hostname, check_name, hostname_for, new_system_id
from edgebox.domain.lifecycle import Action, LifecycleState
from edgebox.domain.models import (
    Interface,
    Machine,
    MachineChanges,
    MachineFilter,
    NewEvent,
    NewMachine,
)
from edgebox.domain.ownership import check_owner
from edgebox.storage.machine_store import Decision, MachinePage, MachineStore

log = logging.getLogger(__name__)

# The actions this edgebox can carry out now. The rest of the lifecycle (commission, deploy,
# release, power, ...) arrives with the services that do the work.
AVAILABLE_ACTIONS: Sequence[Action] = (
    Action.LOCK,
    Action.UNLOCK,
    Action.MARK_BROKEN,
    Action.MARK_FIXED,
    Action.TAG,
    Action.SET_POOL,
    Action.SET_ZONE,
)


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action: Action
    actor: str
    comment: str = ""
    pool: str | None = None
    zone: str | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()


class MachineService:
    def __init__(self, store: MachineStore) -> None:
        self._store = store

    async def get(self, system_id: str) -> Machine:
        return await self._store.get(system_id)

    async def inventory(self, system_id: str) -> dict[str, object] | None:
        return await self._store.inventory(system_id)

    async def query(self, flt: MachineFilter, limit: int, after: int = 0) -> MachinePage:
        return await self._store.query(flt, limit, after)

    async def create(
        self,
        macs: Sequence[str],
        actor: str,
        *,
        hostname: str | None = None,
        arch: str = "",
        pool: str = "default",
        zone: str = "default",
        tags: Sequence[str] = (),
        enlisted: bool = False,
    ) -> Machine:
        if not macs:
            raise InvalidInput("mac", "a machine needs at least one MAC address")
        if len(set(macs)) != len(macs):
            raise InvalidInput("macs", "the same MAC address is given twice")
        system_id = new_system_id()
        interfaces = tuple(Interface(mac, boot=i == 0) for i, mac in enumerate(macs))
        new = NewMachine(
            system_id=system_id,
            hostname=validated_hostname(hostname) if hostname else hostname_for(system_id),
            interfaces=interfaces,
            arch=arch,
            pool=validated_name(pool, "pool"),
            zone=validated_name(zone, "zone"),
            tags=tuple(validated_name(t, "tag") for t in tags),
        )

        def events(machine: Machine) -> list[NewEvent]:
            how = "enlisted (it network-booted)" if enlisted else "created"
            return [
                NewEvent(
                    "machine.created",
                    f"machine {machine.hostname} {how} with MAC {macs[0]}",
                    machine=machine.system_id,
                    data={
                        "user": actor,
                        "macs": list(macs),
                        "status": machine.status.value,
                        "enlisted": enlisted,
                    },
                )
            ]

        machine = await self._store.create(new, events)
        log.info("machine created system_id=%s mac=%s user=%s", system_id, macs[0], actor)
        return machine

    async def update(self, system_id: str, changes: MachineChanges, actor: str) -> Machine:
        changes = validated_changes(changes)

        def decide(machine: Machine) -> Decision:
            if machine.locked:
                raise lifecycle.IllegalTransition(
                    machine.status, Action.TAG, "it is locked; unlock it first"
                )
            changed = _describe(machine, changes)
            event = NewEvent(
                "machine.updated",
                f"machine {machine.hostname} updated: {', '.join(changed) or 'no change'}",
                machine=machine.system_id,
                data={"user": actor, "fields": changed},
            )
            return changes, [event]

        return await self._store.change(system_id, decide)

    async def delete(self, system_id: str, actor: str, *, admin: bool = False) -> Machine:
        """Delete a machine; one allocated to a user only by that user or an admin."""

        def decide(machine: Machine) -> list[NewEvent]:
            lifecycle.apply(machine.lifecycle, Action.DELETE)
            check_owner(machine, actor, admin=admin, doing="delete")
            return [
                NewEvent(
                    "machine.deleted",
                    f"machine {machine.hostname} deleted",
                    machine=machine.system_id,
                    data={"user": actor, "status": machine.status.value},
                )
            ]

        machine = await self._store.delete(system_id, decide)
        log.info("machine deleted system_id=%s user=%s", system_id, actor)
        return machine

    async def act(self, system_id: str, request: ActionRequest) -> Machine:
        if request.action not in AVAILABLE_ACTIONS:
            available = ", ".join(a.value for a in AVAILABLE_ACTIONS)
            raise InvalidInput(
                "action", f"{request.action.value!r} is not available here; use one of {available}"
            )

        def decide(machine: Machine) -> Decision:
            after = lifecycle.apply(machine.lifecycle, request.action)
            changes = _action_changes(request, after)
            return changes, [_action_event(machine, after, request)]

        machine = await self._store.change(system_id, decide)
        log.info(
            "machine action system_id=%s action=%s status=%s user=%s",
            system_id,
            request.action.value,
            machine.status.value,
            request.actor,
        )
        return machine


def _action_changes(request: ActionRequest, after: LifecycleState) -> MachineChanges:
    if request.action is Action.SET_POOL:
        if request.pool is None:
            raise InvalidInput("pool", "set-pool needs a pool name")
        return MachineChanges(pool=validated_name(request.pool, "pool"), lifecycle=after)
    if request.action is Action.SET_ZONE:
        if request.zone is None:
            raise InvalidInput("zone", "set-zone needs a zone name")
        return MachineChanges(zone=validated_name(request.zone, "zone"), lifecycle=after)
    if request.action is Action.TAG:
        if not request.add_tags and not request.remove_tags:
            raise InvalidInput("add", "tag needs tags to add or remove")
        return MachineChanges(
            add_tags=tuple(validated_name(t, "tag") for t in request.add_tags),
            remove_tags=request.remove_tags,
            lifecycle=after,
        )
    return MachineChanges(lifecycle=after)


def _action_event(machine: Machine, after: LifecycleState, request: ActionRequest) -> NewEvent:
    data: dict[str, Any] = {
        "user": request.actor,
        "action": request.action.value,
        "from": machine.status.value,
        "to": after.status.value,
    }
    if request.comment:
        data["comment"] = request.comment
    if after.status != machine.status:
        message = (
            f"{machine.hostname}: {machine.status.value} -> {after.status.value} "
            f"({request.action.value} by {request.actor})"
        )
        kind = "machine.status"
    else:
        message = f"{machine.hostname}: {request.action.value} by {request.actor}"
        kind = "machine.action"
    if request.comment:
        message += f": {request.comment}"
    return NewEvent(kind, message, machine=machine.system_id, data=data)


def _describe(machine: Machine, changes: MachineChanges) -> list[str]:
    fields: Mapping[str, object] = {
        "hostname": changes.hostname,
        "pool": changes.pool,
        "zone": changes.zone,
        "tags": changes.tags,
    }
    return [name for name, value in fields.items() if value is not None]


def validated_hostname(text: str) -> str:
    try:
        return check_hostname(text)
    except ValueError as exc:
        raise InvalidInput("hostname", str(exc)) from None


def validated_name(text: str, what: str) -> str:
    try:
        return check_name(text, what)
    except ValueError as exc:
        raise InvalidInput(what, str(exc)) from None


def validated_changes(changes: MachineChanges) -> MachineChanges:
    """Check the names in an update before it reaches the store."""
    return MachineChanges(
        hostname=validated_hostname(changes.hostname) if changes.hostname is not None else None,
        pool=validated_name(changes.pool, "pool") if changes.pool is not None else None,
        zone=validated_name(changes.zone, "zone") if changes.zone is not None else None,
        tags=tuple(validated_name(t, "tag") for t in changes.tags)
        if changes.tags is not None
        else None,
    )
