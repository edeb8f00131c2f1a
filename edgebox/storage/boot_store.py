"""Per-boot agent tokens, and enlistment: match or create the machine, keep its inventory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgebox.domain.enlistment import Identity
from edgebox.domain.hardware import summary_of
from edgebox.domain.models import Machine, NewEvent, NewMachine
from edgebox.storage import machines_sql as sql
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx


@dataclass(frozen=True, slots=True)
class BootToken:
    mac: str
    machine_id: int | None
    purpose: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Enlisted:
    machine: Machine
    created: bool
    matched_by: str  # "mac", "smbios_uuid", "serial" or "" (created)


class BootStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def issue_token(
        self, token_hash: str, mac: str, machine_id: int | None, purpose: str, ttl: float
    ) -> None:
        def job(tx: Tx) -> None:
            # One live token per NIC is enough: a new boot replaces the previous one's.
            tx.conn.execute("DELETE FROM boot_tokens WHERE mac = ?", (mac,))
            tx.conn.execute(
                "INSERT INTO boot_tokens (token_hash, mac, machine_id, purpose, issued_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, mac, machine_id, purpose, tx.now, tx.now + ttl),
            )

        await self._db.write(job)

    async def token(self, token_hash: str) -> BootToken | None:
        row = await self._db.fetchone(
            "SELECT mac, machine_id, purpose, expires_at FROM boot_tokens WHERE token_hash = ?",
            (token_hash,),
        )
        return BootToken(row[0], row[1], row[2], row[3]) if row else None

    async def machine_by_mac(self, mac: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT m.system_id FROM interfaces i JOIN machines m ON m.id = i.machine_id "
            "WHERE i.mac = ?",
            (mac,),
        )
        return str(row[0]) if row else None

    async def inventory(self, machine_id: int) -> dict[str, Any] | None:
        row = await self._db.fetchone(
            "SELECT data FROM machine_inventory WHERE machine_id = ?", (machine_id,)
        )
        return json.loads(row[0]) if row else None

    async def enlist(
        self,
        identity: Identity,
        inventory: Mapping[str, Any],
        new_machine: Callable[[], NewMachine],
        events: Callable[[Machine, bool, str], list[NewEvent]],
    ) -> Enlisted:
        """Find the machine (MAC, then SMBIOS UUID, then serial) or create it, then record its
        interfaces and inventory — one transaction."""

        def job(tx: Tx) -> Enlisted:
            conn = tx.conn
            machine_id, matched_by = _find(conn, identity)
            created = machine_id is None
            if machine_id is None:
                machine_id = sql.insert_machine(conn, new_machine(), tx.now)
            _add_interfaces(conn, machine_id, identity, _nic_names(inventory))
            summary = json.dumps(summary_of(inventory).as_dict())
            conn.execute(
                "INSERT INTO machine_inventory (machine_id, smbios_uuid, serial, data, "
                "summary, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (machine_id) DO "
                "UPDATE SET smbios_uuid = excluded.smbios_uuid, serial = excluded.serial, "
                # A commissioned inventory (richer, normalized) is kept until the next
                # commissioning replaces it; enlistment's own is only the first guess.
                "data = CASE WHEN commissioned_at IS NULL THEN excluded.data ELSE data END, "
                "summary = CASE WHEN commissioned_at IS NULL THEN excluded.summary "
                "ELSE summary END, updated_at = excluded.updated_at",
                (machine_id, identity.smbios_uuid, identity.serial, json.dumps(inventory),
                 summary, tx.now),
            )  # fmt: skip
            system_id = conn.execute(
                "SELECT system_id FROM machines WHERE id = ?", (machine_id,)
            ).fetchone()[0]
            machine = sql.load_machine(conn, system_id)
            assert machine is not None
            for event in events(machine, created, matched_by):
                tx.emit(event)
            return Enlisted(machine, created, matched_by)

        return await self._db.write(job)


def _find(conn: sqlite3.Connection, identity: Identity) -> tuple[int | None, str]:
    marks = ",".join("?" * len(identity.macs))
    row = conn.execute(
        f"SELECT machine_id FROM interfaces WHERE mac IN ({marks}) ORDER BY mac = ? DESC LIMIT 1",
        (*identity.macs, identity.boot_mac),
    ).fetchone()
    if row is not None:
        return int(row[0]), "mac"
    for column, value in (("smbios_uuid", identity.smbios_uuid), ("serial", identity.serial)):
        if not value:
            continue
        rows = conn.execute(
            f"SELECT machine_id FROM machine_inventory WHERE {column} = ?", (value,)
        ).fetchall()
        if len(rows) == 1:  # two machines with one "unique" id: trust neither
            return int(rows[0][0]), column
    return None, ""


def _nic_names(inventory: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for nic in inventory.get("nics") or []:
        if isinstance(nic, Mapping) and nic.get("mac"):
            names[str(nic["mac"]).lower()] = str(nic.get("name") or "")
    return names


def _add_interfaces(
    conn: sqlite3.Connection, machine_id: int, identity: Identity, names: Mapping[str, str]
) -> None:
    for mac in identity.macs:
        owner = conn.execute("SELECT machine_id FROM interfaces WHERE mac = ?", (mac,)).fetchone()
        if owner is None:
            conn.execute(
                "INSERT INTO interfaces (machine_id, mac, name, boot) VALUES (?, ?, ?, ?)",
                (machine_id, mac, names.get(mac, ""), int(mac == identity.boot_mac)),
            )
        elif owner[0] == machine_id:
            conn.execute(
                "UPDATE interfaces SET name = ?, boot = ? WHERE mac = ?",
                (names.get(mac, ""), int(mac == identity.boot_mac), mac),
            )
