"""Numbered schema migrations, applied in order at start.

Each file `migrations/NNNN_name.sql` moves the schema from version NNNN-1 to NNNN; SQLite's
`user_version` holds the version a database is at. A database newer than this code is refused:
running old code on it could corrupt data that the newer code wrote.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaTooNew(Exception):
    """The database was written by a newer edgebox."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("edgebox.storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.name} breaks the numbering at {expected}")
    return found


def migrate(conn: sqlite3.Connection, path: str, migrations: list[Migration]) -> int:
    """Bring the schema up to date; return the version it ends at."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaTooNew(
            f"the database {path} is at schema version {current}, but this edgebox knows only "
            f"up to {latest}: it was written by a newer edgebox. Run that version, or restore "
            "a backup made for this one."
        )
    for migration in migrations[current:]:
        log.info("applying migration name=%s db=%s", migration.name, path)
        # One transaction per migration: a crash leaves the previous version intact.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return latest


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        statements.append(buffer.strip())
    return [s for s in statements if s]
