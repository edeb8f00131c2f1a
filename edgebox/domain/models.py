"""The records that cross layers: machines, interfaces, events, users and tokens."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgebox.domain.hardware import HardwareSummary
from edgebox.domain.lifecycle import LifecycleState, Status
from edgebox.domain.power import PowerState


@dataclass(frozen=True, slots=True)
class Interface:
    mac: str
    name: str = ""
    boot: bool = False


@dataclass(frozen=True, slots=True)
class Machine:
    id: int
    system_id: str
    hostname: str
    status: Status
    previous_status: Status | None
    arch: str
    pool: str
    zone: str
    owner: str | None
    locked: bool
    power_state: PowerState
    created_at: float
    updated_at: float
    status_changed_at: float
    tags: tuple[str, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    hardware: HardwareSummary | None = None  # None until an agent reported an inventory

    @property
    def lifecycle(self) -> LifecycleState:
        return LifecycleState(self.status, self.previous_status, self.locked)


@dataclass(frozen=True, slots=True)
class NewMachine:
    """What a caller gives to create a machine; the store fills in the rest."""

    system_id: str
    hostname: str
    interfaces: tuple[Interface, ...]
    arch: str = ""
    pool: str = "default"
    zone: str = "default"
    tags: tuple[str, ...] = ()
    status: Status = Status.NEW


@dataclass(frozen=True, slots=True)
class MachineChanges:
    """Attributes to change on a machine; None leaves the attribute as it is."""

    hostname: str | None = None
    pool: str | None = None
    zone: str | None = None
    tags: tuple[str, ...] | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    lifecycle: LifecycleState | None = None


@dataclass(frozen=True, slots=True)
class MachineFilter:
    status: tuple[Status, ...] = ()
    pool: str | None = None
    zone: str | None = None
    tags: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    hostname: str | None = None
    mac: str | None = None
    owner: str | None = None


class EventLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    message: str
    machine: str | None = None  # the machine's system_id; events outlive their machine
    level: EventLevel = EventLevel.INFO
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the append-only event log. `seq` only ever grows: the hub syncs by it."""

    seq: int
    time: float
    type: str
    level: EventLevel
    message: str
    machine: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    name: str
    created_at: float
