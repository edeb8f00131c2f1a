"""DHCP leases, reservations, API-defined subnets and foreign servers."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from edgebox.domain.dhcp import ForeignServer, LeaseRecord, LeaseState, StoredSubnet
from edgebox.domain.errors import Conflict, NotFound
from edgebox.domain.models import NewEvent
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx

_LEASE_COLUMNS = "ip, mac, client_id, subnet, state, hostname, expires"


def _lease(row: sqlite3.Row) -> LeaseRecord:
    return LeaseRecord(row[0], row[1], row[2], row[3], LeaseState(row[4]), row[5], row[6])


# A lease as the hot path writes it: ip, mac, client_id, subnet, state, hostname, expires.
# A plain tuple, not a `LeaseRecord`: thousands a second are made and written, and the
# write takes tuples anyway.
LeaseRow = tuple[int, str, bytes | None, str, str, str, float]

_UPSERT_HEAD = (
    "INSERT INTO dhcp_leases (ip, mac, client_id, subnet, state, hostname, expires, "
    "updated_at) VALUES "
)
_UPSERT_TAIL = (
    " ON CONFLICT (ip) DO UPDATE SET "
    "mac = excluded.mac, client_id = excluded.client_id, subnet = excluded.subnet, "
    "state = excluded.state, hostname = excluded.hostname, expires = excluded.expires, "
    "updated_at = excluded.updated_at"
)
_ROW_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNKS = (256, 64, 16, 4, 1)  # rows per statement; few texts, so all stay prepared


def _upsert_sql(rows: int) -> str:
    return _UPSERT_HEAD + ", ".join([_ROW_VALUES] * rows) + _UPSERT_TAIL


_UPSERT_SQL = {size: _upsert_sql(size) for size in _CHUNKS}


def lease_row(x: LeaseRecord) -> LeaseRow:
    return (x.ip, x.mac, x.client_id, x.subnet, x.state.value, x.hostname, x.expires)


def upsert_lease_rows(conn: sqlite3.Connection, rows: Sequence[LeaseRow], now: float) -> None:
    """Write lease states; called inside write jobs on the DHCP hot path.

    Many rows per INSERT rather than `executemany`: the sqlite3 module lets go of the GIL
    around every statement step, and the writer thread shares its core with the event loop,
    which has the GIL nearly all the time; a row per step meant a thread switch per row
    (measured: 32 rows committed in 81 ms beside a busy thread, 15 ms as one statement).
    Rows for the same address are applied in order, as `executemany` would.
    """
    done = 0
    while done < len(rows):
        size = next(size for size in _CHUNKS if size <= len(rows) - done)
        params: list[object] = []
        for row in rows[done : done + size]:
            params.extend(row)
            params.append(now)
        conn.execute(_UPSERT_SQL[size], params)
        done += size


def upsert_leases(conn: sqlite3.Connection, leases: Sequence[LeaseRecord], now: float) -> None:
    upsert_lease_rows(conn, [lease_row(x) for x in leases], now)


class DhcpStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # Leases

    async def all_leases(self) -> list[LeaseRecord]:
        rows = await self._db.fetchall(f"SELECT {_LEASE_COLUMNS} FROM dhcp_leases")
        return [_lease(r) for r in rows]

    async def leases(
        self, subnet: str | None, mac: str | None, states: Sequence[LeaseState], limit: int
    ) -> list[LeaseRecord]:
        clauses, params = [], []
        if subnet is not None:
            clauses.append("subnet = ?")
            params.append(subnet)
        if mac is not None:
            clauses.append("mac = ?")
            params.append(mac)
        if states:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(s.value for s in states)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._db.fetchall(
            f"SELECT {_LEASE_COLUMNS} FROM dhcp_leases {where} ORDER BY ip LIMIT ?",
            [*params, limit],
        )
        return [_lease(r) for r in rows]

    async def record(self, leases: Sequence[LeaseRecord]) -> None:
        def job(tx: Tx) -> None:
            upsert_leases(tx.conn, leases, tx.now)

        await self._db.write(job)

    async def reservations(self) -> dict[str, str]:
        """MAC -> reserved IP, from the inventory's interfaces."""
        rows = await self._db.fetchall("SELECT mac, ip FROM interfaces WHERE ip IS NOT NULL")
        return {r[0]: r[1] for r in rows}

    async def known_mac(self, mac: str) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM interfaces WHERE mac = ?", (mac,))
        return row is not None

    # Foreign servers

    async def saw_foreign_server(self, server: ForeignServer) -> bool:
        """Record a sighting; True when this server was not known on this link before."""

        def job(tx: Tx) -> bool:
            row = tx.conn.execute(
                "SELECT 1 FROM dhcp_foreign_servers WHERE server_ip = ? AND interface = ?",
                (server.server_ip, server.interface),
            ).fetchone()
            tx.conn.execute(
                "INSERT INTO dhcp_foreign_servers (server_ip, interface, server_mac, offered_ip, "
                "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (server_ip, interface) DO UPDATE SET last_seen = excluded.last_seen, "
                "server_mac = excluded.server_mac, offered_ip = excluded.offered_ip",
                (
                    server.server_ip,
                    server.interface,
                    server.server_mac,
                    server.offered_ip,
                    tx.now,
                    tx.now,
                ),
            )
            if row is None:
                tx.emit(
                    NewEvent(
                        "dhcp.foreign_server",
                        f"another DHCP server {server.server_ip} answers on {server.interface}",
                        data={
                            "server_ip": server.server_ip,
                            "interface": server.interface,
                            "server_mac": server.server_mac,
                            "offered_ip": server.offered_ip,
                        },
                    )
                )
            return row is None

        return await self._db.write(job)

    async def foreign_servers(self) -> list[ForeignServer]:
        rows = await self._db.fetchall(
            "SELECT server_ip, interface, server_mac, offered_ip, first_seen, last_seen "
            "FROM dhcp_foreign_servers ORDER BY interface, server_ip"
        )
        return [ForeignServer(*r) for r in rows]

    # Subnets defined through the API

    async def subnets(self) -> list[StoredSubnet]:
        rows = await self._db.fetchall(
            "SELECT id, cidr, definition, created_at, updated_at FROM dhcp_subnets ORDER BY id"
        )
        return [StoredSubnet(*r) for r in rows]

    async def put_subnet(self, cidr: str, definition: str, create: bool) -> StoredSubnet:
        def job(tx: Tx) -> StoredSubnet:
            row = tx.conn.execute("SELECT id FROM dhcp_subnets WHERE cidr = ?", (cidr,)).fetchone()
            if create and row is not None:
                raise Conflict(f"subnet {cidr} already exists")
            if not create and row is None:
                raise NotFound("subnet", cidr)
            if row is None:
                tx.conn.execute(
                    "INSERT INTO dhcp_subnets (cidr, definition, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (cidr, definition, tx.now, tx.now),
                )
            else:
                tx.conn.execute(
                    "UPDATE dhcp_subnets SET definition = ?, updated_at = ? WHERE cidr = ?",
                    (definition, tx.now, cidr),
                )
            verb = "created" if row is None else "changed"
            tx.emit(NewEvent(f"dhcp.subnet_{verb}", f"subnet {cidr} {verb}", data={"cidr": cidr}))
            out = tx.conn.execute(
                "SELECT id, cidr, definition, created_at, updated_at FROM dhcp_subnets "
                "WHERE cidr = ?",
                (cidr,),
            ).fetchone()
            return StoredSubnet(*out)

        return await self._db.write(job)

    async def delete_subnet(self, cidr: str) -> None:
        def job(tx: Tx) -> None:
            cursor = tx.conn.execute("DELETE FROM dhcp_subnets WHERE cidr = ?", (cidr,))
            if cursor.rowcount == 0:
                raise NotFound("subnet", cidr)
            tx.emit(NewEvent("dhcp.subnet_deleted", f"subnet {cidr} deleted", data={"cidr": cidr}))

        await self._db.write(job)
