"""Lease rows written many to a statement: every row lands, in order, whatever the count."""

from __future__ import annotations

import pytest

from edgebox.domain.dhcp import LeaseRecord, LeaseState
from edgebox.storage.database import Database
from edgebox.storage.dhcp_store import DhcpStore, LeaseRow, upsert_lease_rows
from edgebox.storage.writer import Tx


def row(ip: int, state: str = "bound", expires: float = 2e9) -> LeaseRow:
    return (ip, f"52:54:00:00:{ip >> 8 & 255:02x}:{ip & 255:02x}", None, "s", state, "", expires)


@pytest.mark.parametrize("count", [1, 3, 4, 5, 21, 64, 100, 256, 341, 600])
async def test_every_row_is_written_with_the_group_time(db: Database, count: int) -> None:
    rows = [row(ip) for ip in range(1, count + 1)]

    def job(tx: Tx) -> None:
        upsert_lease_rows(tx.conn, rows, 123.0)

    await db.write(job)
    stored = await DhcpStore(db).all_leases()
    assert sorted(lease.ip for lease in stored) == list(range(1, count + 1))
    assert all(lease.state is LeaseState.BOUND and lease.expires == 2e9 for lease in stored)
    updated = await db.fetchall("SELECT DISTINCT updated_at FROM dhcp_leases")
    assert [tuple(r) for r in updated] == [(123.0,)]


async def test_later_rows_for_an_address_win_within_one_write(db: Database) -> None:
    rows = [row(7, "bound", 100.0), *(row(ip) for ip in range(8, 30)), row(7, "released", 50.0)]

    def job(tx: Tx) -> None:
        upsert_lease_rows(tx.conn, rows, 1.0)

    await db.write(job)
    leases = {lease.ip: lease for lease in await DhcpStore(db).all_leases()}
    assert (leases[7].state, leases[7].expires) == (LeaseState.RELEASED, 50.0)


async def test_records_and_rows_are_the_same_write(db: Database) -> None:
    record = LeaseRecord(9, "52:54:00:00:00:09", b"\x01abc", "s", LeaseState.DECLINED, "h", 5.0)
    await DhcpStore(db).record([record])
    assert await DhcpStore(db).all_leases() == [record]
