"""LeaseWriteBatcher: one lease write in flight, spaced by an interval; what comes meanwhile is
the next single job; nothing waits after a quiet spell."""

from __future__ import annotations

import asyncio
import threading

from edgebox.services.lease_writes import LeaseWriteBatcher
from edgebox.storage.database import Database
from edgebox.storage.dhcp_store import DhcpStore, LeaseRow
from edgebox.storage.writer import Tx


def row(ip: int, mac: str | None = "52:54:00:00:00:01") -> LeaseRow:
    return (ip, mac, None, "10.9.0.0/24", "bound", "", 2e9)  # type: ignore[return-value]


async def hold_the_writer(db: Database) -> threading.Event:
    """Occupy the writer thread until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def blocking(tx: Tx) -> None:
        started.set()
        release.wait(10)

    db.submit(blocking)
    await asyncio.to_thread(started.wait, 10)
    return release


async def test_rows_that_come_during_a_write_go_as_one_job_after_it(db: Database) -> None:
    writes = LeaseWriteBatcher(db, DhcpStore(db))
    release = await hold_the_writer(db)
    first = writes.add(row(1))
    await asyncio.sleep(0)  # the first row's job is submitted: it waits behind the blocker
    later = [writes.add(row(2))]
    for ip in (3, 4):
        await asyncio.sleep(0)  # other turns of the loop
        later.append(writes.add(row(ip)))
    assert later[0] is later[1] is later[2] and later[0] is not first
    assert writes.batches == 1 and not first.done()
    release.set()
    await first
    assert not later[0].done()  # committed only after its own job
    await later[0]
    assert writes.batches == 2
    assert sorted(lease.ip for lease in await DhcpStore(db).all_leases()) == [1, 2, 3, 4]


async def test_a_failed_write_fails_its_rows_only(db: Database) -> None:
    writes = LeaseWriteBatcher(db, DhcpStore(db))
    release = await hold_the_writer(db)
    broken = writes.add(row(1, mac=None))  # NOT NULL: the job fails
    await asyncio.sleep(0)
    fine = writes.add(row(2))
    release.set()
    results = await asyncio.gather(broken, fine, return_exceptions=True)
    assert isinstance(results[0], Exception) and results[1] is None
    assert [lease.ip for lease in await DhcpStore(db).all_leases()] == [2]


async def test_after_a_quiet_spell_a_row_is_written_at_once(db: Database) -> None:
    writes = LeaseWriteBatcher(db, DhcpStore(db))
    writes.interval = 60.0  # would be noticed
    await asyncio.wait_for(writes.add(row(1)), 10)
    assert writes.batches == 1


async def test_writes_under_load_are_spaced_by_the_interval(db: Database) -> None:
    writes = LeaseWriteBatcher(db, DhcpStore(db))
    writes.interval = 0.5
    loop = asyncio.get_running_loop()
    await writes.add(row(1))
    started = loop.time()
    second = writes.add(row(2))
    await asyncio.sleep(0.1)
    assert not second.done() and writes.batches == 1  # waits for the interval to pass
    await second
    assert loop.time() - started >= 0.35 and writes.batches == 2
