"""Allocation: give a caller Ready machines that match constraints, all or none.

`allocate` reads the Ready machines with the few inventory facts the constraints need
(cores, memory, `uname -m`: picked out by SQLite, never the whole inventory), lets
`domain.allocation.choose` pick the smallest that fit, and allocates them in one transaction
that checks each one is still Ready: if another request took one meanwhile, nothing is
allocated and the choice is made again (a few times), so two callers never share a machine
and a caller never gets fewer than asked. A refusal is a 409 that says how many matched and
why the others did not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from edgebox.domain.allocation import Candidate, Constraints, choose
from edgebox.domain.errors import Conflict, InvalidInput
from edgebox.domain.lifecycle import Action, IllegalTransition
from edgebox.domain.models import Machine, MachineFilter
from edgebox.services.status_events import move
from edgebox.storage.deploy_store import Change, DeployStore

log = logging.getLogger(__name__)

READY_LIMIT: Final = 100_000
TRIES: Final = 3


class AllocationRefused(Conflict):
    """Not enough Ready machines match; the message says how many did and why not."""


class AllocationService:
    def __init__(self, store: DeployStore) -> None:
        self._store = store

    async def allocate(
        self, constraints: Constraints, count: int, actor: str, comment: str = ""
    ) -> list[Machine]:
        if not 1 <= count <= 10_000:
            raise InvalidInput("count", "expected a number of machines from 1 to 10000")
        for attempt in range(1, TRIES + 1):
            choice = choose(constraints, await self._candidates(constraints), count)
            if not choice.chosen:
                raise AllocationRefused(choice.refusal)
            try:
                machines = await self._take(choice.chosen, actor, comment)
            except (IllegalTransition, Conflict) as exc:
                log.info("allocation raced another request (try %d): %s", attempt, exc)
                continue
            log.info(
                "allocated machines=%s constraints=%s user=%s",
                ",".join(m.system_id for m in machines), constraints.describe(), actor,
            )  # fmt: skip
            return machines
        raise Conflict("the Ready machines kept changing while allocating; try again")

    async def allocate_one(self, system_id: str, actor: str, comment: str = "") -> Machine:
        """The allocate action on one machine (the lifecycle says whether it may)."""
        [machine] = await self._take([system_id], actor, comment)
        return machine

    async def _candidates(self, constraints: Constraints) -> list[Candidate]:
        # Every Ready machine, not only those in the pool or with the tags: the refusal
        # counts why each one does not fit.
        machines = await self._store.ready_machines(MachineFilter(), READY_LIMIT)
        facts = await self._store.inventory_facts([m.id for m in machines])
        return [
            Candidate(
                m.system_id, m.arch, m.tags, m.pool, m.zone, *facts.get(m.id, (None, None, ""))
            )
            for m in machines
        ]

    async def _take(self, system_ids: Sequence[str], actor: str, comment: str) -> list[Machine]:
        def decide(machine: Machine) -> Change:
            after, event = move(machine, Action.ALLOCATE, actor, comment)
            return Change(lifecycle=after, owner=actor, events=[event])

        return await self._store.allocate(system_ids, decide)
