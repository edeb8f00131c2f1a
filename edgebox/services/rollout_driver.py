"""Drives rollouts (a bulk deploy or release) from wave to wave, as `domain/rollout.py` decides.

Whenever a deployment of a rollout ends, its service `poke`s the rollout; the driver's task
then reads the states of the rollout's deployments (one query) and acts on `next_move`: start
the next wave, skip the queued machines after too many failures, or mark the rollout done.
A lock per rollout keeps two moves from overlapping; starting a deployment re-checks in its
transaction that it is still queued, so a repeated move starts nothing twice. At start the
driver pokes every running rollout, which resumes what a restart interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from edgebox.domain.models import EventLevel, NewEvent
from edgebox.domain.rollout import MoveKind, RolloutState, next_move
from edgebox.storage.deploy_store import DeployStore

log = logging.getLogger(__name__)

Begin = Callable[[Sequence[int]], Awaitable[None]]
Skip = Callable[[Sequence[int], str], Awaitable[None]]
MAX_MOVES = 10_000  # a guard: a rollout has at most this many waves


class RolloutDriver:
    def __init__(self, store: DeployStore, *, begin: Begin, skip: Skip) -> None:
        self._store = store
        self._begin = begin
        self._skip = skip
        self._locks: dict[int, asyncio.Lock] = {}
        self._pending: set[int] = set()
        self._wake = asyncio.Event()

    def poke(self, rollout_id: int) -> None:
        """Look at the rollout again soon (from the driver's task)."""
        self._pending.add(rollout_id)
        self._wake.set()

    async def run(self) -> None:
        for rollout_id in await self._store.running_rollouts():
            self.poke(rollout_id)
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, set()
            for rollout_id in sorted(pending):
                try:
                    await self.advance(rollout_id)
                except Exception:
                    log.exception(
                        "rollout %d: cannot advance; trying at its next change", rollout_id
                    )

    def lock(self, rollout_id: int) -> asyncio.Lock:
        """Held while a rollout moves; a service holds it while it adds the rollout's
        machines, so that no move sees half of them."""
        return self._locks.setdefault(rollout_id, asyncio.Lock())

    async def advance(self, rollout_id: int) -> None:
        """Make every move the rollout's state calls for now."""
        async with self.lock(rollout_id):
            for _ in range(MAX_MOVES):
                if not await self._move(rollout_id):
                    break

    async def _move(self, rollout_id: int) -> bool:
        """One move; True if another may follow at once."""
        rollout = await self._store.rollout(rollout_id)
        if rollout is None or rollout.state is not RolloutState.RUNNING:
            return False
        move = next_move(await self._store.rollout_states(rollout_id), rollout.max_failures)
        if move.kind is MoveKind.WAIT:
            return False
        if move.kind is MoveKind.START:
            ids = await self._store.queued_in_wave(rollout_id, move.wave)
            log.info("rollout %d: starting wave %d (%d machines)", rollout_id, move.wave, len(ids))
            await self._begin(ids)
            return True
        if move.kind is MoveKind.STOP:
            await self._skip(await self._store.queued_of_rollout(rollout_id), move.reason)
            await self._end(rollout_id, RolloutState.STOPPED, move.reason, rollout.kind.value)
            return False
        await self._end(rollout_id, RolloutState.DONE, "", rollout.kind.value)
        return False

    async def _end(self, rollout_id: int, state: RolloutState, reason: str, kind: str) -> None:
        items = await self._store.rollout_states(rollout_id)
        counts: dict[str, int] = {}
        for _, item_state in items:
            counts[item_state.value] = counts.get(item_state.value, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        word = "stopped" if state is RolloutState.STOPPED else "finished"
        message = f"{kind} rollout {rollout_id} {word}: {summary}"
        if reason:
            message += f" ({reason})"
        failed = counts.get("failed", 0)
        event = NewEvent(
            f"rollout.{word}",
            message,
            level=EventLevel.WARNING if failed or reason else EventLevel.INFO,
            data={"rollout": rollout_id, "kind": kind, "counts": counts, "reason": reason},
        )
        if await self._store.end_rollout(rollout_id, state, reason, [event]):
            log.info("%s", message)
