"""The cap on worker processes: a slot per worker until it has exited, callers in line (FIFO)
beyond the cap, the longest-idle worker asked to end to make room, and a caller who gives up
(a deadline, a cancel) leaves the count right."""

from __future__ import annotations

import asyncio

import pytest

from edgebox.drivers.power.worker_slots import WorkerSlots


async def test_slots_up_to_the_limit_then_callers_wait_in_line() -> None:
    slots = WorkerSlots(2)
    await slots.acquire()
    await slots.acquire()
    assert slots.live == 2
    order: list[str] = []

    async def take(name: str) -> None:
        await slots.acquire()
        order.append(name)

    first = asyncio.ensure_future(take("first"))
    second = asyncio.ensure_future(take("second"))
    await asyncio.sleep(0)
    assert slots.waiting == 2 and order == []
    slots.release()  # a worker exited: its slot passes to the first in line
    await first
    assert order == ["first"] and slots.live == 2
    slots.release()
    await second
    assert order == ["first", "second"]
    for _ in range(2):
        slots.release()
    assert slots.live == 0


async def test_a_waiting_caller_asks_the_longest_idle_worker_to_end() -> None:
    slots = WorkerSlots(2)
    await slots.acquire()
    await slots.acquire()
    ended: list[str] = []
    slots.idle("bmc-a", lambda: ended.append("bmc-a"))
    slots.idle("bmc-b", lambda: ended.append("bmc-b"))
    slots.busy("bmc-a")  # a new call on bmc-a: its worker is not to be ended
    waiter = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    assert ended == ["bmc-b"]
    slots.release()  # bmc-b's worker has exited
    await waiter
    assert slots.live == 2


async def test_a_worker_going_idle_while_callers_wait_is_ended_at_once() -> None:
    slots = WorkerSlots(1)
    await slots.acquire()
    waiter = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    ended: list[str] = []
    slots.idle("bmc-a", lambda: ended.append("bmc-a"))
    assert ended == ["bmc-a"]
    slots.release()
    await waiter


async def test_a_caller_that_gives_up_leaves_no_slot_behind() -> None:
    slots = WorkerSlots(1)
    await slots.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await slots.acquire()
    assert slots.waiting == 0
    slots.release()
    assert slots.live == 0
    # Handed a slot and cancelled before it ran: the slot passes on, it is not lost.
    await slots.acquire()
    late = asyncio.ensure_future(slots.acquire())
    after = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    slots.release()
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    await after
    assert slots.live == 1


def test_a_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerSlots(0)
