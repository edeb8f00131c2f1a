"""The site's identity: created once, kept for the life of the database."""

from __future__ import annotations

import uuid

from edgebox.domain.models import NewEvent, Site
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx


class SiteStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure(self, name: str) -> Site:
        """Return the site, creating it with a new random id on the first start.

        The name follows the configuration; the id never changes (the hub knows the site by it).
        """

        def job(tx: Tx) -> Site:
            row = tx.conn.execute("SELECT site_id, name, created_at FROM site").fetchone()
            if row is None:
                site = Site(str(uuid.uuid4()), name, tx.now)
                tx.conn.execute(
                    "INSERT INTO site (id, site_id, name, created_at) VALUES (1, ?, ?, ?)",
                    (site.site_id, site.name, site.created_at),
                )
                tx.emit(
                    NewEvent("site.created", f"site {name} created", data={"site_id": site.site_id})
                )
                return site
            if row[1] != name:
                tx.conn.execute("UPDATE site SET name = ? WHERE id = 1", (name,))
            return Site(row[0], name, row[2])

        return await self._db.write(job)
