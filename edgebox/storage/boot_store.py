"""Per-boot agent tokens, and enlistment: match or create the machine, keep its inventory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgebox.domain.boot_window import Claim, decide_claim
from edgebox.domain.enlistment import Identity
from edgebox.domain.hardware import summary_of
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine, NewEvent, NewMachine
from edgebox.storage import machines_sql as sql
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx


@dataclass(frozen=True, slots=True)
class BootToken:
    mac: str
    machine_id: int | None  # None: issued for a MAC edgebox did not know (it may only enlist)
    purpose: str
    expires_at: float
    source: str = ""  # the address it was handed to; calls with it come from there


# The statuses whose entry opens a boot window: edgebox boots the ephemeral environment then.
WINDOW_STATUSES = frozenset(
    s.value
    for s in (Status.NEW, Status.COMMISSIONING, Status.TESTING, Status.DEPLOYING,
              Status.DISK_ERASING, Status.RESCUE_MODE)
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token about to be handed out: its hash, for which NIC and purpose, for how long, and
    to which address."""

    token_hash: str
    mac: str
    purpose: str
    ttl: float
    source: str


class EnlistRefused(Exception):
    """An enlistment that would take over another machine's record; the message says why."""


@dataclass(frozen=True, slots=True)
class Enlisted:
    machine: Machine
    created: bool
    duplicate_of: str = ""  # a known machine with the same hardware identity (an admin merges)
    duplicate_by: str = ""  # "smbios_uuid" or "serial"
    foreign_macs: tuple[str, ...] = ()  # NICs listed that belong to other machines: not taken


class BootStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def issue_unknown_token(self, grant: TokenGrant) -> bool:
        """A token for a MAC no machine has (it can only create a New machine). False when the
        MAC became known meanwhile: then the machine's own window rules apply."""

        def job(tx: Tx) -> bool:
            if tx.conn.execute("SELECT 1 FROM interfaces WHERE mac = ?", (grant.mac,)).fetchone():
                return False
            _insert_token(tx, grant, None)
            return True

        return await self._db.write(job)

    async def claim(
        self, machine_id: int, grant: TokenGrant, leased: frozenset[str]
    ) -> Claim | None:
        """Claim the machine's current boot window for `source` and, if granted, issue the
        token — one transaction. None: the machine is in no status that opens a window."""

        def job(tx: Tx) -> Claim | None:
            conn = tx.conn
            row = conn.execute(
                "SELECT status, status_changed_at FROM machines WHERE id = ?", (machine_id,)
            ).fetchone()
            if row is None or row[0] not in WINDOW_STATUSES:
                return None
            opened_at = float(row[1])
            held = conn.execute(
                "SELECT claimed_from FROM boot_windows WHERE machine_id = ? AND opened_at = ?",
                (machine_id, opened_at),
            ).fetchone()
            claim = decide_claim(held[0] if held else None, grant.source, leased)
            if claim.granted:
                conn.execute(
                    "INSERT INTO boot_windows (machine_id, opened_at, claimed_from, claimed_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (machine_id) DO UPDATE SET "
                    "opened_at = excluded.opened_at, claimed_from = excluded.claimed_from, "
                    "claimed_at = excluded.claimed_at",
                    (machine_id, opened_at, grant.source, tx.now),
                )
                _insert_token(tx, grant, machine_id)
            return claim

        return await self._db.write(job)

    async def token(self, token_hash: str) -> BootToken | None:
        row = await self._db.fetchone(
            "SELECT mac, machine_id, purpose, expires_at, source FROM boot_tokens "
            "WHERE token_hash = ?",
            (token_hash,),
        )
        return BootToken(row[0], row[1], row[2], row[3], row[4]) if row else None

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
        machine_id: int | None,
        identity: Identity,
        inventory: Mapping[str, Any],
        new_machine: Callable[[], NewMachine],
        events: Callable[[Enlisted], list[NewEvent]],
    ) -> Enlisted:
        """Record the inventory of the token's machine — or, for a token issued to a MAC no
        machine had (`machine_id` None), create a New machine: such a token never matches,
        merges into or changes an existing one. A new machine whose SMBIOS UUID or serial a
        known one has is flagged (`duplicate_of`) for an admin, never merged. One transaction.
        """

        def job(tx: Tx) -> Enlisted:
            conn = tx.conn
            target, duplicate_of = machine_id, ("", "")
            if target is None:
                owner = conn.execute(
                    "SELECT m.system_id FROM interfaces i JOIN machines m ON m.id = i.machine_id "
                    "WHERE i.mac = ?",
                    (identity.boot_mac,),
                ).fetchone()
                if owner is not None:
                    raise EnlistRefused(
                        f"{identity.boot_mac} belongs to machine {owner[0]} since this boot's "
                        "token was issued; boot it again"
                    )
                duplicate_of = _same_hardware(conn, identity)
                target = sql.insert_machine(conn, new_machine(), tx.now)
            foreign = _add_interfaces(conn, target, identity, _nic_names(inventory))
            _store_inventory(tx, target, identity, inventory)
            system_id = conn.execute(
                "SELECT system_id FROM machines WHERE id = ?", (target,)
            ).fetchone()[0]
            machine = sql.load_machine(conn, system_id)
            assert machine is not None
            enlisted = Enlisted(machine, machine_id is None, *duplicate_of, foreign)
            for event in events(enlisted):
                tx.emit(event)
            return enlisted

        return await self._db.write(job)


def _insert_token(tx: Tx, grant: TokenGrant, machine_id: int | None) -> None:
    # One live token per NIC: a new boot replaces the previous one's; and the expired ones
    # go (a few at a time, so that one issue never pays for a long idle spell).
    tx.conn.execute("DELETE FROM boot_tokens WHERE mac = ?", (grant.mac,))
    tx.conn.execute(
        "DELETE FROM boot_tokens WHERE id IN (SELECT id FROM boot_tokens WHERE expires_at < ? "
        "ORDER BY expires_at LIMIT 64)",
        (tx.now,),
    )
    tx.conn.execute(
        "INSERT INTO boot_tokens (token_hash, mac, machine_id, purpose, issued_at, expires_at, "
        "source) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (grant.token_hash, grant.mac, machine_id, grant.purpose, tx.now, tx.now + grant.ttl,
         grant.source),
    )  # fmt: skip


def _same_hardware(conn: sqlite3.Connection, identity: Identity) -> tuple[str, str]:
    """(system_id, "smbios_uuid"|"serial") of the one known machine with this hardware
    identity, else ("", "")."""
    for column, value in (("smbios_uuid", identity.smbios_uuid), ("serial", identity.serial)):
        if not value:
            continue
        rows = conn.execute(
            f"SELECT m.system_id FROM machine_inventory i JOIN machines m ON m.id = i.machine_id "
            f"WHERE i.{column} = ?",
            (value,),
        ).fetchall()
        if len(rows) == 1:  # two machines with one "unique" id: trust neither
            return str(rows[0][0]), column
    return "", ""


def _store_inventory(
    tx: Tx, machine_id: int, identity: Identity, inventory: Mapping[str, Any]
) -> None:
    summary = json.dumps(summary_of(inventory).as_dict())
    tx.conn.execute(
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


def _nic_names(inventory: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for nic in inventory.get("nics") or []:
        if isinstance(nic, Mapping) and nic.get("mac"):
            names[str(nic["mac"]).lower()] = str(nic.get("name") or "")
    return names


def _add_interfaces(
    conn: sqlite3.Connection, machine_id: int, identity: Identity, names: Mapping[str, str]
) -> tuple[str, ...]:
    """Add the NICs no machine has, update the machine's own; the MACs that belong to another
    machine are left where they are and returned."""
    foreign: list[str] = []
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
        else:
            foreign.append(mac)
    return tuple(foreign)
