"""Tags: read them, and change them with their machines in one transaction.

A tag with a definition is automatic: which machines carry it follows from their inventories.
Creating such a tag or changing its definition re-evaluates it over every machine: the caller
judges the machines from `inventories()` pages outside the writer, and the write job applies
those verdicts (judging again any machine whose inventory changed meanwhile), so that the
definition, the memberships and the events that describe them commit together or not at all.
The caller decides membership and writes the events (pure functions passed in); the store
only moves rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgebox.domain.errors import Conflict, NotFound
from edgebox.domain.models import NewEvent
from edgebox.storage import tags_sql
from edgebox.storage.database import Database
from edgebox.storage.tags_sql import Evaluation, Judge, MachineTagChange
from edgebox.storage.writer import Tx


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    definition: str
    comment: str
    machine_count: int

    @property
    def automatic(self) -> bool:
        return bool(self.definition)


@dataclass(frozen=True, slots=True)
class StoredInventory:
    machine_id: int
    system_id: str
    stamp: float | None  # the inventory row's updated_at; None: no inventory
    data: str | None  # JSON


# The events for a change of a tag: the tag as it is now, and what happened to machines.
TagEvents = Callable[[Tag, Sequence[MachineTagChange]], Sequence[NewEvent]]

_SELECT = (
    "SELECT t.name, t.definition, t.comment, "
    "(SELECT count(*) FROM machine_tags mt WHERE mt.tag_id = t.id) FROM tags t"
)


def _tag(row: sqlite3.Row) -> Tag:
    return Tag(row[0], row[1], row[2], row[3])


class TagStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[Tag]:
        rows = await self._db.fetchall(f"{_SELECT} ORDER BY t.name")
        return [_tag(row) for row in rows]

    async def get(self, name: str) -> Tag:
        row = await self._db.fetchone(f"{_SELECT} WHERE t.name = ?", (name,))
        if row is None:
            raise NotFound("tag", name)
        return _tag(row)

    async def inventories(self, after: int, limit: int) -> list[StoredInventory]:
        """A page of machines with their stored inventories, in id order, from id `after`."""
        rows = await self._db.fetchall(
            "SELECT m.id, m.system_id, i.updated_at, i.data FROM machines m "
            "LEFT JOIN machine_inventory i ON i.machine_id = m.id WHERE m.id > ? "
            "ORDER BY m.id LIMIT ?",
            (after, limit),
        )
        return [StoredInventory(*row) for row in rows]

    async def exists(self, name: str) -> bool:
        return await self._db.fetchone("SELECT 1 FROM tags WHERE name = ?", (name,)) is not None

    async def create(
        self,
        name: str,
        definition: str,
        comment: str,
        evaluation: Evaluation | None,
        events: TagEvents,
    ) -> Tag:
        def job(tx: Tx) -> Tag:
            if tags_sql.tag_id(tx.conn, name) is not None:
                raise Conflict(f"tag {name!r} already exists")
            cursor = tx.conn.execute(
                "INSERT INTO tags (name, definition, comment) VALUES (?, ?, ?)",
                (name, definition, comment),
            )
            assert cursor.lastrowid is not None
            changes = (
                []
                if evaluation is None
                else tags_sql.reconcile(tx.conn, cursor.lastrowid, name, evaluation)
            )
            return _finish(tx, name, changes, events)

        return await self._db.write(job)

    async def update(
        self,
        name: str,
        *,
        definition: str | None,
        comment: str | None,
        evaluation: Evaluation | None,
        events: TagEvents,
    ) -> Tag:
        """Change the definition and/or comment. `evaluation` (given when the new definition
        is not empty) re-evaluates the tag; clearing a definition leaves the machines that carry
        the tag as they are, now as manual tags."""

        def job(tx: Tx) -> Tag:
            tag = _existing(tx, name)
            if definition is not None:
                tx.conn.execute("UPDATE tags SET definition = ? WHERE id = ?", (definition, tag))
            if comment is not None:
                tx.conn.execute("UPDATE tags SET comment = ? WHERE id = ?", (comment, tag))
            changes = (
                [] if evaluation is None else tags_sql.reconcile(tx.conn, tag, name, evaluation)
            )
            return _finish(tx, name, changes, events)

        return await self._db.write(job)

    async def delete(self, name: str, events: TagEvents) -> Tag:
        """Delete the tag; every machine that carried it loses it."""

        def job(tx: Tx) -> Tag:
            tag = _existing(tx, name)
            before = _load(tx, name)
            changes = tags_sql.carriers_of(tx.conn, tag, name)
            tx.conn.execute("DELETE FROM tags WHERE id = ?", (tag,))
            for event in events(before, changes):
                tx.emit(event)
            return before

        return await self._db.write(job)

    async def retag_machine(
        self,
        system_id: str,
        judge: Judge,
        events: Callable[[MachineTagChange], Sequence[NewEvent]],
    ) -> MachineTagChange:
        """Re-evaluate every automatic tag for one machine, from its stored inventory."""

        def job(tx: Tx) -> MachineTagChange:
            change = tags_sql.retag(tx.conn, system_id, judge)
            if change is None:
                raise NotFound("machine", system_id)
            for event in events(change):
                tx.emit(event)
            return change

        return await self._db.write(job)


def _existing(tx: Tx, name: str) -> int:
    tag = tags_sql.tag_id(tx.conn, name)
    if tag is None:
        raise NotFound("tag", name)
    return tag


def _load(tx: Tx, name: str) -> Tag:
    row = tx.conn.execute(f"{_SELECT} WHERE t.name = ?", (name,)).fetchone()
    assert row is not None
    return _tag(row)


def _finish(tx: Tx, name: str, changes: Sequence[MachineTagChange], events: TagEvents) -> Tag:
    tag = _load(tx, name)
    for event in events(tag, changes):
        tx.emit(event)
    return tag
