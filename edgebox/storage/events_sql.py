"""SQL for the append-only event log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from edgebox.domain.models import Event, EventLevel, NewEvent

EVENT_COLUMNS = "seq, time, type, level, machine, message, data"


def insert_event(conn: sqlite3.Connection, event: NewEvent, now: float) -> Event:
    data = dict(event.data)
    cursor = conn.execute(
        "INSERT INTO events (time, type, level, machine, message, data) VALUES (?, ?, ?, ?, ?, ?)",
        (now, event.type, event.level.value, event.machine, event.message, json.dumps(data)),
    )
    seq = cursor.lastrowid
    assert seq is not None
    return Event(seq, now, event.type, event.level, event.message, event.machine, data)


def event_from_row(row: Sequence[Any]) -> Event:
    seq, time, type_, level, machine, message, data = row
    return Event(seq, time, type_, EventLevel(level), message, machine, json.loads(data))
