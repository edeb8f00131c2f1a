"""SQL for tags and machine_tags that runs inside write jobs (on the writer's thread).

Two rules live here because they must hold in the same transaction as the change:

- An automatic tag (one with a definition) is set only by re-evaluation. A manual add or
  remove that names it is refused (`refuse_automatic`); a request that replaces a machine's
  tags keeps its automatic ones (`automatic_of`), so that a client that reads the tags, edits
  the list and writes it back never trips over them.
- Re-evaluation over every machine is judged outside the writer (parsing a few thousand
  inventories takes seconds, and the writer must stay free for DHCP leases); in the job,
  each verdict is checked against the inventory's updated_at, and a machine whose inventory
  changed since it was judged is judged again there. So a concurrent commissioning can never
  leave a machine tagged by its old hardware.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgebox.domain.errors import Conflict

log = logging.getLogger(__name__)

Inventory = Mapping[str, Any] | None
# Does a machine with this inventory (None: it has reported none) carry the tag?
Member = Callable[[Inventory], bool]
# For one machine's inventory: a test of (tag name, definition) -> does it carry that tag?
Judge = Callable[[Inventory], Callable[[str, str], bool]]


@dataclass(frozen=True, slots=True)
class MachineTagChange:
    """What re-evaluation or a deletion did to one machine's tags."""

    system_id: str
    hostname: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def automatic_of(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, str]:
    """The automatic tags among `names`, with their definitions."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT name, definition FROM tags WHERE definition != '' AND name IN ({marks})", wanted
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def refuse_automatic(conn: sqlite3.Connection, names: Collection[str]) -> None:
    """Refuse a manual change that names an automatic tag."""
    automatic = automatic_of(conn, names)
    if automatic:
        name, definition = min(automatic.items())
        raise Conflict(
            f"tag {name!r} is automatic: its definition ({definition}) decides which machines "
            "carry it, so it cannot be added or removed by hand; change or clear the "
            f"definition instead (edgebox tags update {name} --definition ...)"
        )


def tag_id(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM tags WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def inventory_of(data: str | None, where: str) -> Inventory:
    """A stored inventory; a row that is not a JSON object counts as no inventory."""
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        log.warning("stored inventory is not JSON machine=%s", where)
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a machine carries a tag, judged from its inventory as stamped `stamp` (the
    row's updated_at; None: no inventory)."""

    stamp: float | None
    carries: bool


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A definition judged over the machines as they were read before the write job, and its
    test, to judge again in the job a machine whose inventory changed since (or a new one)."""

    member: Member
    verdicts: Mapping[int, Verdict]


def reconcile(
    conn: sqlite3.Connection, tag: int, name: str, evaluation: Evaluation
) -> list[MachineTagChange]:
    """Give the tag to exactly the machines the evaluation accepts; return what changed."""
    carriers = {
        row[0]
        for row in conn.execute("SELECT machine_id FROM machine_tags WHERE tag_id = ?", (tag,))
    }
    rows = conn.execute(
        "SELECT m.id, m.system_id, m.hostname, i.updated_at FROM machines m "
        "LEFT JOIN machine_inventory i ON i.machine_id = m.id ORDER BY m.id"
    ).fetchall()
    changes = []
    for machine_id, system_id, hostname, stamp in rows:
        verdict = evaluation.verdicts.get(machine_id)
        if verdict is not None and verdict.stamp == stamp:
            wanted = verdict.carries
        else:  # its inventory changed after it was judged, or it is new: judge it here
            data = conn.execute(
                "SELECT data FROM machine_inventory WHERE machine_id = ?", (machine_id,)
            ).fetchone()
            wanted = evaluation.member(inventory_of(data[0] if data else None, system_id))
        if wanted and machine_id not in carriers:
            conn.execute(
                "INSERT INTO machine_tags (machine_id, tag_id) VALUES (?, ?)", (machine_id, tag)
            )
            changes.append(MachineTagChange(system_id, hostname, added=(name,)))
        elif not wanted and machine_id in carriers:
            conn.execute(
                "DELETE FROM machine_tags WHERE machine_id = ? AND tag_id = ?", (machine_id, tag)
            )
            changes.append(MachineTagChange(system_id, hostname, removed=(name,)))
    return changes


def carriers_of(conn: sqlite3.Connection, tag: int, name: str) -> list[MachineTagChange]:
    """The machines that carry the tag, as if it were being removed from each."""
    rows = conn.execute(
        "SELECT m.system_id, m.hostname FROM machine_tags mt JOIN machines m "
        "ON m.id = mt.machine_id WHERE mt.tag_id = ? ORDER BY m.id",
        (tag,),
    )
    return [MachineTagChange(system_id, hostname, removed=(name,)) for system_id, hostname in rows]


def retag(
    conn: sqlite3.Connection,
    system_id: str,
    judge: Judge,
) -> MachineTagChange | None:
    """Re-evaluate every automatic tag for one machine; None when there is no such machine."""
    row = conn.execute(
        "SELECT m.id, m.hostname, i.data FROM machines m "
        "LEFT JOIN machine_inventory i ON i.machine_id = m.id WHERE m.system_id = ?",
        (system_id,),
    ).fetchone()
    if row is None:
        return None
    machine_id, hostname, data = row
    carries = judge(inventory_of(data, system_id))
    carried = {
        tag
        for (tag,) in conn.execute(
            "SELECT tag_id FROM machine_tags WHERE machine_id = ?", (machine_id,)
        )
    }
    added: list[str] = []
    removed: list[str] = []
    tags = conn.execute(
        "SELECT id, name, definition FROM tags WHERE definition != '' ORDER BY name"
    )
    for tag, name, definition in tags.fetchall():
        wanted = carries(name, definition)
        if wanted and tag not in carried:
            conn.execute(
                "INSERT INTO machine_tags (machine_id, tag_id) VALUES (?, ?)", (machine_id, tag)
            )
            added.append(name)
        elif not wanted and tag in carried:
            conn.execute(
                "DELETE FROM machine_tags WHERE machine_id = ? AND tag_id = ?", (machine_id, tag)
            )
            removed.append(name)
    return MachineTagChange(system_id, hostname, tuple(added), tuple(removed))
