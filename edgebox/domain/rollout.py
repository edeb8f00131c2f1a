"""Rolling deploys: many machines in waves of K, stopping once N of them have failed.

Theory of operation
-------------------
A bulk deploy reserves every machine it accepts at once (each gets a `queued` deployment with
its wave number: `assign_waves`), so no one else allocates them meanwhile, and then deploys a
wave at a time. Whenever one of its deployments ends, `next_move` looks at all of them and
says what to do:

- `stop`: the failures reached `max_failures` while machines still wait: skip every queued
  one (the waves in flight finish on their own);
- `wait`: a wave is still in flight;
- `start` wave W: nothing in flight, the lowest queued wave is next;
- `done`: nothing is queued or in flight.

A wave size of 0 puts every machine in wave 0 (all at once); max_failures 0 never stops.
Pure functions of the deployments' states: the service stores them, this module decides.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from edgebox.domain.deployment import DeployState


class RolloutState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # the failures reached the limit; queued machines were skipped
    DONE = "done"


class MoveKind(enum.Enum):
    WAIT = "wait"
    START = "start"
    STOP = "stop"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Move:
    kind: MoveKind
    wave: int = 0  # START: which wave
    reason: str = ""


def wave_of(index: int, wave_size: int) -> int:
    """The wave of the machine accepted `index`-th (from 0): K per wave (0: one wave)."""
    if wave_size < 0:
        raise ValueError(f"a wave size cannot be negative, got {wave_size}")
    return index // wave_size if wave_size else 0


def assign_waves(count: int, wave_size: int) -> list[int]:
    """The wave of each of `count` machines, in order."""
    return [wave_of(index, wave_size) for index in range(count)]


def next_move(items: Sequence[tuple[int, DeployState]], max_failures: int) -> Move:
    """What a rollout does now, from (wave, state) of each of its deployments."""
    failed = sum(1 for _, state in items if state is DeployState.FAILED)
    queued = [wave for wave, state in items if state is DeployState.QUEUED]
    running = any(state is DeployState.RUNNING for _, state in items)
    if queued and max_failures and failed >= max_failures:
        return Move(
            MoveKind.STOP,
            reason=f"{failed} deployment(s) failed (the limit is {max_failures}); "
            f"{len(queued)} machine(s) not started",
        )
    if running:
        return Move(MoveKind.WAIT)
    if queued:
        return Move(MoveKind.START, min(queued))
    return Move(MoveKind.DONE)
