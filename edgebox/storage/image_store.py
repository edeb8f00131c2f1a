"""Image rows: signed manifests, import state, pins and holds (see migration 0006).

Every decision that must not race with another writer is made inside the write transaction:
deleting checks pins and holds in the same transaction that deletes, eviction re-checks each
victim, and acquiring checks that the image is ready. Deleting an image answers the files that
no other image lists any more, for the caller to remove from disk after the commit.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain.errors import Conflict, NotFound
from edgebox.domain.image_manifest import ImageManifest, SignedManifest, parse_envelope
from edgebox.domain.models import NewEvent
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx


class ImageState(enum.StrEnum):
    IMPORTING = "importing"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    signed: SignedManifest
    envelope: str
    source: Mapping[str, str]
    state: ImageState
    error: str
    pinned: bool
    size: int
    imported_at: float
    updated_at: float
    last_used: float
    holders: tuple[str, ...]

    @property
    def manifest(self) -> ImageManifest:
        return self.signed.manifest

    @property
    def name(self) -> str:
        return self.signed.manifest.name


_COLUMNS = (
    "i.id, i.envelope, i.source, i.state, i.error, i.pinned, i.size, i.imported_at, "
    "i.updated_at, i.last_used, "
    "(SELECT group_concat(h.holder, char(10)) FROM image_holds h WHERE h.image_id = i.id)"
)
_SELECT = f"SELECT {_COLUMNS} FROM images i"
_ORDER = "ORDER BY i.name, i.created DESC, i.id"


def _record(row: sqlite3.Row | tuple[Any, ...]) -> ImageRecord:
    holders = tuple(sorted(row[10].split("\n"))) if row[10] else ()
    return ImageRecord(
        id=row[0],
        signed=parse_envelope(row[1].encode()),
        envelope=row[1],
        source=json.loads(row[2]),
        state=ImageState(row[3]),
        error=row[4],
        pinned=bool(row[5]),
        size=row[6],
        imported_at=row[7],
        updated_at=row[8],
        last_used=row[9],
        holders=holders,
    )


def _load(conn: sqlite3.Connection, image_id: str) -> ImageRecord:
    row = conn.execute(f"{_SELECT} WHERE i.id = ?", (image_id,)).fetchone()
    if row is None:
        raise NotFound("image", image_id)
    return _record(row)


def _orphans(conn: sqlite3.Connection, shas: Sequence[str]) -> list[str]:
    """Of `shas`, the files that no image lists any more."""
    return [
        sha
        for sha in shas
        if conn.execute("SELECT 1 FROM image_files WHERE sha256 = ?", (sha,)).fetchone() is None
    ]


def _remove(conn: sqlite3.Connection, image_id: str) -> list[str]:
    shas = [
        r[0] for r in conn.execute("SELECT sha256 FROM image_files WHERE image_id = ?", (image_id,))
    ]
    conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
    return _orphans(conn, shas)


class ImageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[ImageRecord]:
        return [_record(r) for r in await self._db.fetchall(f"{_SELECT} {_ORDER}")]

    async def get(self, image_id: str) -> ImageRecord | None:
        row = await self._db.fetchone(f"{_SELECT} WHERE i.id = ?", (image_id,))
        return _record(row) if row else None

    async def find(self, ref: str) -> list[ImageRecord]:
        """Images whose id starts with `ref` or whose name is `ref`, newest first."""
        rows = await self._db.fetchall(
            f"{_SELECT} WHERE i.name = ? OR (length(?) >= 8 AND substr(i.id, 1, length(?)) = ?) "
            "ORDER BY i.created DESC, i.imported_at DESC",
            (ref, ref, ref, ref.lower()),
        )
        return [_record(r) for r in rows]

    async def in_state(self, state: ImageState) -> list[ImageRecord]:
        rows = await self._db.fetchall(f"{_SELECT} WHERE i.state = ? {_ORDER}", (state.value,))
        return [_record(r) for r in rows]

    async def file_is_ready(self, sha256: str) -> bool:
        """True when a ready image lists the file: only those are served."""
        row = await self._db.fetchone(
            "SELECT 1 FROM image_files f JOIN images i ON i.id = f.image_id "
            "WHERE f.sha256 = ? AND i.state = 'ready' LIMIT 1",
            (sha256,),
        )
        return row is not None

    async def referenced_files(self) -> set[str]:
        return {r[0] for r in await self._db.fetchall("SELECT DISTINCT sha256 FROM image_files")}

    async def begin_import(
        self, signed: SignedManifest, envelope: str, source: Mapping[str, str], event: NewEvent
    ) -> tuple[ImageRecord, bool]:
        """Record an import (state importing). An image already known is returned as it is
        (False), unless it had failed: then it is importing again (True)."""
        manifest = signed.manifest
        image_id = signed.image_id

        def job(tx: Tx) -> tuple[ImageRecord, bool]:
            conn = tx.conn
            row = conn.execute("SELECT state FROM images WHERE id = ?", (image_id,)).fetchone()
            if row is not None and row[0] != ImageState.FAILED:
                return _load(conn, image_id), False
            if row is not None:
                conn.execute(
                    "UPDATE images SET state = ?, error = '', source = ?, updated_at = ? "
                    "WHERE id = ?",
                    (ImageState.IMPORTING.value, json.dumps(source), tx.now, image_id),
                )
            else:
                conn.execute(
                    "INSERT INTO images (id, name, envelope, key_id, source, state, size, "
                    "created, imported_at, updated_at, last_used) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        image_id,
                        manifest.name,
                        envelope,
                        signed.key_id,
                        json.dumps(source),
                        ImageState.IMPORTING.value,
                        manifest.size,
                        manifest.created,
                        tx.now,
                        tx.now,
                        tx.now,
                    ),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO image_files (image_id, sha256, size) VALUES (?, ?, ?)",
                    [(image_id, f.sha256, f.size) for f in manifest.files],
                )
            tx.emit(event)
            return _load(conn, image_id), True

        return await self._db.write(job)

    async def finish(
        self, image_id: str, state: ImageState, error: str, event: NewEvent
    ) -> ImageRecord:
        def job(tx: Tx) -> ImageRecord:
            tx.conn.execute(
                "UPDATE images SET state = ?, error = ?, updated_at = ?, last_used = ? "
                "WHERE id = ?",
                (state.value, error, tx.now, tx.now, image_id),
            )
            tx.emit(event)
            return _load(tx.conn, image_id)

        return await self._db.write(job)

    async def set_pinned(self, image_id: str, pinned: bool, event: NewEvent) -> ImageRecord:
        def job(tx: Tx) -> ImageRecord:
            before = _load(tx.conn, image_id)
            if before.pinned != pinned:
                tx.conn.execute(
                    "UPDATE images SET pinned = ?, updated_at = ? WHERE id = ?",
                    (int(pinned), tx.now, image_id),
                )
                tx.emit(event)
            return _load(tx.conn, image_id)

        return await self._db.write(job)

    async def delete(self, image_id: str, event: NewEvent) -> list[str]:
        """Delete an image unless pinned or held; return the files no other image lists."""

        def job(tx: Tx) -> list[str]:
            image = _load(tx.conn, image_id)
            if image.pinned:
                raise Conflict(
                    f"image {image.name} ({image_id[:12]}) is pinned; unpin it first "
                    f"('edgebox images unpin {image_id[:12]}')"
                )
            if image.holders:
                raise Conflict(
                    f"image {image.name} ({image_id[:12]}) is in use by "
                    f"{', '.join(image.holders)}; it can be deleted once released"
                )
            orphans = _remove(tx.conn, image_id)
            tx.emit(event)
            return orphans

        return await self._db.write(job)

    async def evict(
        self, image_ids: Sequence[str], describe: Callable[[ImageRecord], NewEvent]
    ) -> tuple[list[str], list[str]]:
        """Evict images that are still evictable (not importing, unpinned, unheld), re-checked here;
        return (the ids evicted, the files no image lists any more)."""

        def job(tx: Tx) -> tuple[list[str], list[str]]:
            evicted, orphans = [], []
            for image_id in image_ids:
                row = tx.conn.execute(f"{_SELECT} WHERE i.id = ?", (image_id,)).fetchone()
                if row is None:
                    continue
                image = _record(row)
                if image.state == ImageState.IMPORTING or image.pinned or image.holders:
                    continue
                orphans.extend(_remove(tx.conn, image_id))
                tx.emit(describe(image))
                evicted.append(image_id)
            return evicted, sorted(set(orphans))

        return await self._db.write(job)

    async def acquire(self, image_id: str, holder: str, event: NewEvent) -> ImageRecord:
        """`holder` uses the image from now on (replacing what it held before)."""

        def job(tx: Tx) -> ImageRecord:
            image = _load(tx.conn, image_id)
            if image.state != ImageState.READY:
                raise Conflict(
                    f"image {image.name} ({image_id[:12]}) is {image.state.value}, not ready"
                )
            tx.conn.execute(
                "INSERT INTO image_holds (holder, image_id, since) VALUES (?, ?, ?) "
                "ON CONFLICT (holder) DO UPDATE SET image_id = excluded.image_id, "
                "since = excluded.since",
                (holder, image_id, tx.now),
            )
            tx.conn.execute("UPDATE images SET last_used = ? WHERE id = ?", (tx.now, image_id))
            tx.emit(event)
            return _load(tx.conn, image_id)

        return await self._db.write(job)

    async def release(self, holder: str, describe: Callable[[str], NewEvent]) -> str | None:
        """End `holder`'s use; return the image id it held (None: it held nothing)."""

        def job(tx: Tx) -> str | None:
            row = tx.conn.execute(
                "SELECT image_id FROM image_holds WHERE holder = ?", (holder,)
            ).fetchone()
            if row is None:
                return None
            tx.conn.execute("DELETE FROM image_holds WHERE holder = ?", (holder,))
            tx.conn.execute("UPDATE images SET last_used = ? WHERE id = ?", (tx.now, row[0]))
            tx.emit(describe(row[0]))
            return str(row[0])

        return await self._db.write(job)
