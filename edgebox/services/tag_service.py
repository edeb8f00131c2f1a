"""Tags: manual labels, and automatic ones whose definition is evaluated over the inventory.

A definition (see `edgebox/domain/tag_expression.py`) is parsed before it is stored, so a
stored definition always evaluates. It is re-evaluated over every machine when the tag is
created or its definition is given again (even unchanged: that is how to ask for a refresh),
and over one machine by `retag_machine` after commissioning has stored a new inventory. Each
machine whose tags change gets an event saying which and why, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from edgebox.domain.errors import Conflict, InvalidInput
from edgebox.domain.models import NewEvent
from edgebox.domain.tag_expression import (
    TagExpression,
    TagExpressionError,
    parse_tag_expression,
    tag_context,
)
from edgebox.services.machine_service import validated_name
from edgebox.storage.tag_store import StoredInventory, Tag, TagEvents, TagStore
from edgebox.storage.tags_sql import (
    Evaluation,
    Inventory,
    MachineTagChange,
    Member,
    Verdict,
    inventory_of,
)

log = logging.getLogger(__name__)

MAX_COMMENT = 1000
_PAGE = 200  # machines judged per worker-thread hop
_CACHE_SIZE = 256


class TagService:
    def __init__(self, store: TagStore) -> None:
        self._store = store
        self._parsed: dict[str, TagExpression] = {}

    async def list_tags(self) -> list[Tag]:
        return await self._store.all()

    async def get(self, name: str) -> Tag:
        return await self._store.get(name)

    async def create(
        self, name: str, actor: str, *, definition: str = "", comment: str = ""
    ) -> Tag:
        name = validated_name(name, "tag")
        expression = self._new_expression(definition)
        comment = _comment(comment)
        if await self._store.exists(name):  # fail before evaluating; the write job re-checks
            raise Conflict(f"tag {name!r} already exists")
        evaluation = await self._evaluate(expression)
        events = _tag_events("tag.created", "created", actor)
        tag = await self._store.create(name, definition.strip(), comment, evaluation, events)
        log.info(
            "tag created name=%s automatic=%s machines=%d user=%s",
            name,
            tag.automatic,
            tag.machine_count,
            actor,
        )
        return tag

    async def update(
        self,
        name: str,
        actor: str,
        *,
        definition: str | None = None,
        comment: str | None = None,
    ) -> Tag:
        if definition is None and comment is None:
            raise InvalidInput("definition", "nothing to change: give a definition or a comment")
        expression = self._new_expression(definition) if definition is not None else None
        comment = _comment(comment) if comment is not None else None
        await self._store.get(name)  # NotFound before evaluating
        evaluation = await self._evaluate(expression)
        tag = await self._store.update(
            name,
            definition=definition.strip() if definition is not None else None,
            comment=comment,
            evaluation=evaluation,
            events=_tag_events("tag.updated", "updated", actor),
        )
        log.info("tag updated name=%s machines=%d user=%s", name, tag.machine_count, actor)
        return tag

    async def delete(self, name: str, actor: str) -> Tag:
        tag = await self._store.delete(name, _tag_events("tag.deleted", "deleted", actor))
        log.info("tag deleted name=%s machines=%d user=%s", name, tag.machine_count, actor)
        return tag

    async def retag_machine(self, system_id: str) -> MachineTagChange:
        """Re-evaluate every automatic tag for one machine from its stored inventory; call it
        after storing a new inventory. Returns what changed (possibly nothing)."""

        def judge(inventory: Inventory) -> Callable[[str, str], bool]:
            context = tag_context(inventory)

            def carries(name: str, definition: str) -> bool:
                expression = self._stored(name, definition)
                return expression is not None and expression.evaluate(context)

            return carries

        def events(change: MachineTagChange) -> list[NewEvent]:
            if not change.added and not change.removed:
                return []
            return [_machine_event(change, "re-evaluated from its inventory", None)]

        change = await self._store.retag_machine(system_id, judge, events)
        if change.added or change.removed:
            log.info(
                "machine retagged system_id=%s added=%s removed=%s",
                system_id,
                ",".join(change.added),
                ",".join(change.removed),
            )
        return change

    def _new_expression(self, definition: str) -> TagExpression | None:
        """A definition as sent (None: empty, a manual tag); InvalidInput (400) if it does not
        parse. It is parsed as given, so that the column in an error counts from what the
        user typed; the stored text is stripped."""
        if not definition.strip():
            return None
        try:
            return self._parse(definition)
        except TagExpressionError as exc:
            raise InvalidInput("definition", str(exc)) from None

    async def _evaluate(self, expression: TagExpression | None) -> Evaluation | None:
        """Judge every machine, a page at a time, in a worker thread: the event loop and the
        writer stay free while thousands of inventories are decoded."""
        if expression is None:
            return None
        member: Member = expression.matches_inventory
        verdicts: dict[int, Verdict] = {}
        after = 0
        while page := await self._store.inventories(after, _PAGE):
            verdicts.update(await asyncio.to_thread(_judge, member, page))
            after = page[-1].machine_id
        return Evaluation(member, verdicts)

    def _stored(self, name: str, definition: str) -> TagExpression | None:
        """A stored definition. It parsed when it was stored; if this edgebox's language
        refuses it now (a name dropped from the vocabulary), the tag matches nothing."""
        try:
            return self._parse(definition)
        except TagExpressionError as exc:
            log.warning("stored tag definition no longer parses tag=%s error=%s", name, exc)
            return None

    def _parse(self, definition: str) -> TagExpression:
        expression = self._parsed.get(definition)
        if expression is None:
            expression = parse_tag_expression(definition)
            if len(self._parsed) >= _CACHE_SIZE:
                self._parsed.clear()
            self._parsed[definition] = expression
        return expression


def _judge(member: Member, page: Sequence[StoredInventory]) -> dict[int, Verdict]:
    return {
        row.machine_id: Verdict(row.stamp, member(inventory_of(row.data, row.system_id)))
        for row in page
    }


def _comment(text: str) -> str:
    if len(text) > MAX_COMMENT:
        raise InvalidInput("comment", f"at most {MAX_COMMENT} characters")
    return text


def _tag_events(kind: str, verb: str, actor: str) -> TagEvents:
    def events(tag: Tag, changes: Sequence[MachineTagChange]) -> list[NewEvent]:
        added = sum(1 for c in changes if c.added)
        removed = sum(1 for c in changes if c.removed)
        summary = f"tag {tag.name} {verb} by {actor}"
        if changes:
            summary += f": added to {added} machines, removed from {removed}"
        event = NewEvent(
            kind,
            summary,
            data={
                "user": actor,
                "tag": tag.name,
                "definition": tag.definition,
                "comment": tag.comment,
                "machines_added": added,
                "machines_removed": removed,
            },
        )
        why = "the tag was deleted" if kind == "tag.deleted" else f"definition: {tag.definition}"
        return [event, *(_machine_event(change, why, actor) for change in changes)]

    return events


def _machine_event(change: MachineTagChange, why: str, actor: str | None) -> NewEvent:
    parts = []
    if change.added:
        parts.append(f"tags added {', '.join(change.added)}")
    if change.removed:
        parts.append(f"tags removed {', '.join(change.removed)}")
    data: dict[str, object] = {"added": list(change.added), "removed": list(change.removed)}
    if actor is not None:
        data["user"] = actor
    return NewEvent(
        "machine.tags",
        f"{change.hostname}: {'; '.join(parts)} ({why})",
        machine=change.system_id,
        data=data,
    )
