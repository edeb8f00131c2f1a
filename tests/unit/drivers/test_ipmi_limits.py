"""The IPMI driver's limits: the cap on live worker processes across drivers, and the check of
the BMC's address before a worker is started (fake workers, no BMC, no network)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from edgebox.domain.power import PowerState
from edgebox.domain.power_targets import TargetPolicy, parse_target_policy
from edgebox.drivers.power.base import FatalPowerError, PowerError, RetryablePowerError
from edgebox.drivers.power.targets import TargetGuard
from edgebox.drivers.power.worker_slots import WorkerSlots
from tests.unit.drivers.test_ipmi_driver import Rig, gone, rig, wait_gone

__all__ = ["rig"]  # the fixture, shared with test_ipmi_driver


def lifetimes(entries: list[tuple[int, float, str]]) -> dict[int, tuple[float, float]]:
    """Each worker's (login, logout) times from the journal (logout: inf if it never did)."""
    spans: dict[int, list[float]] = {}
    for pid, at, text in entries:
        if text == "login":
            spans[pid] = [at, float("inf")]
        elif text == "logout":
            spans[pid][1] = at
    return {pid: (start, end) for pid, (start, end) in spans.items()}


def most_alive_at_once(spans: dict[int, tuple[float, float]]) -> int:
    edges = sorted(
        itertools.chain.from_iterable(((s, 1), (e, -1)) for s, e in spans.values()),
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    alive = most = 0
    for _, step in edges:
        alive += step
        most = max(most, alive)
    return most


async def test_at_the_cap_a_call_waits_for_an_idle_worker_to_log_out(rig: Rig) -> None:
    rig.slots = WorkerSlots(1)
    first, second = rig.driver("ok", port=623), rig.driver("ok", port=624)
    assert await first.query() is PowerState.ON
    idle_pid = first.worker_pid
    assert idle_pid is not None and rig.slots.live == 1
    # A second BMC needs a worker: the idle one is asked to end (it logs out) to make room.
    assert await second.query() is PowerState.ON
    assert first.worker_pid is None
    assert await wait_gone(idle_pid)
    assert rig.slots.live == 1
    texts = [(pid, text) for pid, _, text in rig.entries()]
    assert texts.index((idle_pid, "logout")) < texts.index((second.worker_pid, "login"))
    # The first BMC gets a fresh worker in its turn.
    assert await first.query() is PowerState.ON


async def test_a_call_that_finds_no_free_worker_within_its_deadline_says_so(rig: Rig) -> None:
    rig.slots = WorkerSlots(1)
    stuck = rig.driver("hang", timeout=30)
    hung = asyncio.ensure_future(stuck.query())
    while stuck.worker_pid is None:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.005)
    waiting = rig.driver("ok", port=624, timeout=1)
    with pytest.raises(RetryablePowerError) as caught:
        await waiting.query()
    assert str(caught.value) == (
        "BMC ok:624: no IPMI worker free within 1 s: all 1 (power.ipmi_max_workers) are busy;"
        " it is retried, or raise power.ipmi_max_workers"
    )
    assert waiting.worker_pid is None and rig.slots.waiting == 0
    hung.cancel()  # the stuck call is given up: its worker is killed, its slot freed
    with pytest.raises(asyncio.CancelledError):
        await hung
    assert await waiting.query() is PowerState.ON


async def test_a_poll_round_over_many_bmcs_keeps_the_workers_under_the_cap(rig: Rig) -> None:
    rig.slots = WorkerSlots(2)
    drivers = [rig.driver("slow", port=1000 + i) for i in range(6)]
    states = await asyncio.gather(*(d.query() for d in drivers))
    assert states == [PowerState.ON] * 6
    for driver in drivers:
        await driver.close()
    spans = lifetimes(rig.entries())
    assert len(spans) == 6  # every BMC got its worker in turn
    assert most_alive_at_once(spans) <= 2, spans
    assert rig.slots.live == 0


async def test_a_refused_address_is_fatal_and_starts_no_worker(rig: Rig) -> None:
    guard = TargetGuard(TargetPolicy())
    driver = rig.driver("127.0.0.1", locate=guard.address)
    with pytest.raises(FatalPowerError) as caught:
        await driver.query()
    message = str(caught.value)
    assert message.startswith("BMC 127.0.0.1: 127.0.0.1 is a loopback address")
    assert "add 127.0.0.1/32 (or its network) to power.allow_targets" in message
    assert driver.worker_pid is None and rig.entries() == [] and rig.slots.live == 0


async def test_the_worker_is_given_the_checked_address_not_the_name(rig: Rig) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "bmc7.lab" and port in (623, 624)
        return ["127.0.0.7"]

    allowed = TargetGuard(parse_target_policy(["127.0.0.0/8"]), resolve)
    driver = rig.driver("bmc7.lab", locate=allowed.address)
    assert await driver.query() is PowerState.ON
    assert [t for pid, _, t in rig.entries() if t.startswith("host ")] == ["host 127.0.0.7"]

    refused = rig.driver("bmc7.lab", port=624, locate=TargetGuard(TargetPolicy(), resolve).address)
    with pytest.raises(FatalPowerError, match=r"bmc7\.lab resolves to an address that is refused"):
        await refused.query()


async def test_a_name_that_does_not_resolve_is_retryable(rig: Rig) -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    driver = rig.driver("bmc9.lab", locate=TargetGuard(TargetPolicy(), nowhere).address)
    with pytest.raises(PowerError) as caught:
        await driver.query()
    assert isinstance(caught.value, RetryablePowerError)
    assert "cannot resolve the host name 'bmc9.lab'" in str(caught.value)


def test_the_helpers_agree_with_the_journal() -> None:
    spans = {1: (0.0, 2.0), 2: (1.0, 3.0), 3: (2.0, 4.0)}
    assert most_alive_at_once(spans) == 2
    assert gone(2**22 + 12345)  # no such PID
