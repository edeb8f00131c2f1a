"""Scripts, every version of them: add a version, read the current ones, hide a name.

The current version of a name is its highest version, unless that name was deleted (then
none is). Versions are never removed: results keep pointing to the version they ran.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain.errors import Conflict, NotFound
from edgebox.domain.models import NewEvent
from edgebox.domain.script_metadata import ScriptMetadata, metadata_from_json, metadata_to_json
from edgebox.domain.script_runs import StoredScript
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx

SCRIPT_COLUMNS = "id, name, version, metadata, builtin, sha256, created_at, created_by"
# The current version of each name that is not deleted.
CURRENT = (
    "deleted_at IS NULL AND version = (SELECT max(v.version) FROM scripts v WHERE v.name = "
    "scripts.name)"
)


@dataclass(frozen=True, slots=True)
class NewScript:
    metadata: ScriptMetadata
    content: str
    sha256: str
    builtin: bool
    created_by: str


def script_from_row(row: Any) -> StoredScript:
    return StoredScript(
        id=row[0],
        name=row[1],
        version=row[2],
        metadata=metadata_from_json(json.loads(row[3])),
        builtin=bool(row[4]),
        sha256=row[5],
        created_at=row[6],
        created_by=row[7],
    )


def current_scripts(conn: sqlite3.Connection) -> list[StoredScript]:
    """The current versions, on the writer's connection (inside a run's transaction)."""
    rows = conn.execute(f"SELECT {SCRIPT_COLUMNS} FROM scripts WHERE {CURRENT} ORDER BY name")
    return [script_from_row(r) for r in rows]


class ScriptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def current(self, type_: str | None = None) -> list[StoredScript]:
        where, params = (f"{CURRENT} AND type = ?", [type_]) if type_ else (CURRENT, [])
        rows = await self._db.fetchall(
            f"SELECT {SCRIPT_COLUMNS} FROM scripts WHERE {where} ORDER BY name", params
        )
        return [script_from_row(r) for r in rows]

    async def get(self, name: str, version: int | None = None) -> tuple[StoredScript, str]:
        """A version (default: the current one) and its content. Old versions of a deleted
        script can still be read by number: results point to them."""
        if version is None:
            row = await self._db.fetchone(
                f"SELECT {SCRIPT_COLUMNS}, content FROM scripts WHERE name = ? AND {CURRENT}",
                (name,),
            )
        else:
            row = await self._db.fetchone(
                f"SELECT {SCRIPT_COLUMNS}, content FROM scripts WHERE name = ? AND version = ?",
                (name, version),
            )
        if row is None:
            raise NotFound("script", name if version is None else f"{name} version {version}")
        return script_from_row(row), row[8]

    async def versions(self, name: str) -> list[StoredScript]:
        rows = await self._db.fetchall(
            f"SELECT {SCRIPT_COLUMNS} FROM scripts WHERE name = ? ORDER BY version", (name,)
        )
        return [script_from_row(r) for r in rows]

    async def by_id(self, script_id: int) -> tuple[StoredScript, str] | None:
        """A version by its id, with its content (what a result ran)."""
        row = await self._db.fetchone(
            f"SELECT {SCRIPT_COLUMNS}, content FROM scripts WHERE id = ?", (script_id,)
        )
        return (script_from_row(row), str(row[8])) if row else None

    async def add(
        self, new: NewScript, events: Callable[[StoredScript], Sequence[NewEvent]]
    ) -> StoredScript:
        """Store `new` as the next version of its name. A user script may not take the name
        of a built-in one, nor a built-in the name of a user's."""

        def job(tx: Tx) -> StoredScript:
            name = new.metadata.name
            last = tx.conn.execute(
                "SELECT version, builtin FROM scripts WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
            if last is not None and bool(last[1]) != new.builtin:
                owner = "a built-in script" if last[1] else "a user's script"
                raise Conflict(f"the name {name!r} belongs to {owner}; choose another name")
            version = (last[0] if last else 0) + 1
            cursor = tx.conn.execute(
                "INSERT INTO scripts (name, version, type, content, sha256, metadata, builtin, "
                "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    new.metadata.type.value,
                    new.content,
                    new.sha256,
                    json.dumps(metadata_to_json(new.metadata)),
                    int(new.builtin),
                    tx.now,
                    new.created_by,
                ),
            )
            stored = StoredScript(
                id=int(cursor.lastrowid or 0),
                name=name,
                version=version,
                metadata=new.metadata,
                builtin=new.builtin,
                sha256=new.sha256,
                created_at=tx.now,
                created_by=new.created_by,
            )
            for event in events(stored):
                tx.emit(event)
            return stored

        return await self._db.write(job)

    async def delete(
        self, name: str, check: Callable[[StoredScript], Sequence[NewEvent]]
    ) -> StoredScript:
        """Hide every version of `name`; `check` may refuse (raise) and gives the events."""

        def job(tx: Tx) -> StoredScript:
            row = tx.conn.execute(
                f"SELECT {SCRIPT_COLUMNS} FROM scripts WHERE name = ? AND {CURRENT}", (name,)
            ).fetchone()
            if row is None:
                raise NotFound("script", name)
            script = script_from_row(row)
            events = check(script)
            tx.conn.execute(
                "UPDATE scripts SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL",
                (tx.now, name),
            )
            for event in events:
                tx.emit(event)
            return script

        return await self._db.write(job)

    async def builtin_digests(self) -> dict[str, str]:
        """name -> SHA-256 of the current version of each built-in script."""
        rows = await self._db.fetchall(
            f"SELECT name, sha256 FROM scripts WHERE builtin = 1 AND {CURRENT}"
        )
        return {r[0]: r[1] for r in rows}
