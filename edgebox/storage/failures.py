"""Storage failures: which SQLite errors are the storage's fault, what to tell a person, and
whether writes are failing now.

SQLite reports trouble with what lies under it through a few primary result codes
(https://sqlite.org/rescode.html): SQLITE_FULL (the disk is full), SQLITE_IOERR (the OS failed
a read, write or fsync), SQLITE_BUSY and SQLITE_LOCKED (another connection held a lock past the
busy timeout), SQLITE_READONLY, SQLITE_CANTOPEN (a -wal or -shm file cannot be made),
SQLITE_CORRUPT and SQLITE_NOTADB, SQLITE_NOMEM. None is the fault of the write that met it,
and all but a damaged file go away by themselves or once an operator frees space: they become
`StorageUnavailable`, whose message says what to do. Every other error (a constraint, an SQL
mistake) belongs to the job that raised it.

`StorageHealth` is the writer's state over time. An *episode* starts at the first write that
fails for such a reason and ends at the first group that commits without one; it is logged
once when it starts (again only if its cause changes) and once when it ends, however many
writes fail in between.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from edgebox.domain.errors import StorageUnavailable

log = logging.getLogger(__name__)

# Primary result code -> cause. Extended codes (SQLITE_IOERR_FSYNC, ...) carry the primary one
# in their low byte.
_CAUSES = {
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_BUSY: "locked",
    sqlite3.SQLITE_LOCKED: "locked",
    sqlite3.SQLITE_PROTOCOL: "locked",
    sqlite3.SQLITE_READONLY: "read_only",
    sqlite3.SQLITE_CANTOPEN: "cannot_open",
    sqlite3.SQLITE_CORRUPT: "damaged",
    sqlite3.SQLITE_NOTADB: "damaged",
    sqlite3.SQLITE_NOMEM: "out_of_memory",
}
# The same, by the text SQLite gives each code (sqlite3_errstr), for an error that carries no
# code: one raised by hand, or by a layer that dropped it.
_CAUSES_BY_TEXT = {
    "database or disk is full": "disk_full",
    "disk i/o error": "io_error",
    "database is locked": "locked",
    "database table is locked": "locked",
    "locking protocol": "locked",
    "attempt to write a readonly database": "read_only",
    "unable to open database file": "cannot_open",
    "database disk image is malformed": "damaged",
    "file is not a database": "damaged",
    "out of memory": "out_of_memory",
}


def storage_failure(exc: BaseException, db_path: Path) -> StorageUnavailable | None:
    """`exc` as a `StorageUnavailable` if the storage caused it, else None (the job's own)."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if not isinstance(exc, sqlite3.Error):
        return None
    cause = _cause(exc)
    return None if cause is None else unavailable(cause, exc, db_path)


def unavailable(cause: str, exc: sqlite3.Error, db_path: Path) -> StorageUnavailable:
    """The error a caller gets, with a message a person can act on."""
    where = db_path.parent
    detail = str(exc)
    name = getattr(exc, "sqlite_errorname", None)
    if name and name not in detail:
        detail = f"{detail}, {name}"
    if cause == "disk_full":
        message = (
            f"the database's disk is full ({_free_bytes(where)} free in {where}); "
            "free some space there: writes resume by themselves"
        )
    elif cause == "io_error":
        message = (
            f"the disk under the database failed a read or write in {where} ({detail}); "
            "check the disk and the kernel log (dmesg)"
        )
    elif cause == "locked":
        message = (
            f"the database {db_path} is locked by another program ({detail}); "
            "stop whatever else has it open"
        )
    elif cause == "read_only":
        message = (
            f"the database {db_path} cannot be written ({detail}): is its file system "
            "mounted read-only, or the file not writable by edgebox?"
        )
    elif cause == "cannot_open":
        message = (
            f"cannot open the database's files in {where} ({detail}); "
            "check that the directory exists and edgebox may write there"
        )
    elif cause == "damaged":
        message = (
            f"the database {db_path} is damaged ({detail}); "
            "stop edgebox and restore the file from a backup"
        )
    else:
        message = f"the database write failed: {detail}"
    return StorageUnavailable(message, cause, retry_after=1 if cause == "locked" else 5)


def group_failure(exc: sqlite3.Error, db_path: Path) -> StorageUnavailable:
    """An error of the group's own statements (BEGIN, SAVEPOINT, COMMIT, ROLLBACK): never a
    job's fault, whatever its code."""
    return unavailable(_cause(exc) or "unavailable", exc, db_path)


def _cause(exc: sqlite3.Error) -> str | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _CAUSES.get(code & 0xFF)
    text = str(exc).lower()
    return next((cause for words, cause in _CAUSES_BY_TEXT.items() if words in text), None)


def _free_bytes(directory: Path) -> str:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return "unknown space"
    # root may also use the blocks reserved for it; anyone else only the available ones
    blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return f"{blocks * stat.f_frsize} bytes"


class StorageHealth:
    """Whether the database takes writes now; logs each episode of failures once."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._failing: StorageUnavailable | None = None
        self._since = 0.0
        self._failed_writes = 0
        self.episodes = 0

    @property
    def failing(self) -> StorageUnavailable | None:
        """The latest error of the episode in progress, or None when writes succeed."""
        return self._failing

    def describe(self) -> str:
        """`ok` or `failing: <what a person can act on>`."""
        return "ok" if self._failing is None else f"failing: {self._failing}"

    def failed(self, error: StorageUnavailable, writes: int) -> None:
        """`writes` jobs failed with `error`."""
        previous = self._failing
        if previous is None:
            self.episodes += 1
            self._since = self._clock()
            self._failed_writes = 0
            log.error("database writes failing cause=%s: %s", error.cause, error)
        elif previous.cause != error.cause:
            log.error("database writes still failing, now cause=%s: %s", error.cause, error)
        else:
            log.debug("database write failed writes=%d cause=%s", writes, error.cause)
        self._failing = error
        self._failed_writes += writes

    def succeeded(self) -> None:
        """A group committed: the episode, if any, is over."""
        if self._failing is None:
            return
        log.warning(
            "database writes succeed again after %.1f s; %d write(s) failed meanwhile "
            "(last cause=%s)",
            max(0.0, self._clock() - self._since),
            self._failed_writes,
            self._failing.cause,
        )
        self._failing = None
