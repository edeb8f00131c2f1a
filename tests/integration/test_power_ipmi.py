"""The IPMI power driver against OpenIPMI's ipmi_sim on 127.0.0.1 (tests/lab/ipmi_sim.py), with
ipmitool as the second opinion, and against BMCs that never answer."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import BmcConfig, FatalPowerError, RetryablePowerError
from edgebox.drivers.power.ipmi import IpmiDriver
from edgebox.drivers.power.registry import driver_kind
from tests.lab.ipmi_sim import HOST, IpmiSim
from tests.lab.loop_lateness import LatenessProbe
from tests.lab.power_env import loopback_env
from tests.lab.processes import which

Factory = Callable[..., IpmiDriver]
TOOLS = ("ipmi_sim", "ipmitool")


@pytest.fixture(autouse=True)
def _needs_openipmi() -> None:
    missing = [tool for tool in TOOLS if which(tool) is None]
    if not missing:
        return
    if os.geteuid() == 0:  # CI runs as root with scripts/install-lab-packages done
        pytest.fail(f"missing {', '.join(missing)} (Debian packages openipmi, ipmitool)")
    pytest.skip(f"needs {', '.join(missing)}")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[IpmiSim]:
    with IpmiSim(tmp_path) as bmc:
        yield bmc


@pytest.fixture
async def drivers() -> AsyncIterator[Factory]:
    """Makes IPMI drivers through the registry and closes them all at the end."""
    made: list[IpmiDriver] = []

    def make(
        port: int, user: str = IpmiSim.username, password: str = IpmiSim.password, **options: Any
    ) -> IpmiDriver:
        config = BmcConfig("ipmi", HOST, user, password, {"port": port, **options})
        driver = driver_kind("ipmi").create(config, loopback_env())
        assert isinstance(driver, IpmiDriver)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        await driver.close()


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def power_status(sim: IpmiSim) -> str:
    return sim.ipmitool("chassis", "power", "status").strip()


async def test_on_off_and_query_agree_with_ipmitool_over_one_session(
    sim: IpmiSim, drivers: Factory
) -> None:
    driver = drivers(sim.port)
    assert await driver.query() is PowerState.OFF
    assert power_status(sim) == "Chassis Power is off"
    worker = driver.worker_pid

    await driver.power_on()
    assert sim.state()["power"] == 1
    assert power_status(sim) == "Chassis Power is on"
    assert await driver.query() is PowerState.ON

    await driver.power_off()
    assert sim.state()["power"] == 0
    assert power_status(sim) == "Chassis Power is off"
    assert await driver.query() is PowerState.OFF

    assert driver.worker_pid == worker  # one worker, one session, for every call
    assert sim.state()["events"] == ["power 1", "power 0"]
    assert worker is not None
    await driver.close()
    assert gone(worker)


async def test_the_driver_sees_what_ipmitool_did(sim: IpmiSim, drivers: Factory) -> None:
    driver = drivers(sim.port)
    assert await driver.query() is PowerState.OFF
    sim.ipmitool("chassis", "power", "on")
    assert await driver.query() is PowerState.ON
    sim.ipmitool("chassis", "power", "off")
    assert await driver.query() is PowerState.OFF


async def test_power_on_and_off_leave_a_machine_alone_that_is_there_already(
    sim: IpmiSim, drivers: Factory
) -> None:
    driver = drivers(sim.port)
    await driver.power_off()
    assert sim.state()["events"] == []
    await driver.power_on()
    await driver.power_on()
    assert sim.state()["events"] == ["power 1"]


async def test_cycle_resets_a_machine_that_is_on_and_powers_on_one_that_is_off(
    sim: IpmiSim, drivers: Factory
) -> None:
    driver = drivers(sim.port)
    await driver.power_cycle()
    assert sim.state()["events"] == ["power 1"]
    assert await driver.query() is PowerState.ON
    await driver.power_cycle()
    assert sim.state()["events"] == ["power 1", "reset 1"]
    assert power_status(sim) == "Chassis Power is on"


async def test_soft_off_asks_the_os_and_is_not_sent_to_a_machine_that_is_off(
    sim: IpmiSim, drivers: Factory
) -> None:
    driver = drivers(sim.port)
    sim.ipmitool("chassis", "power", "on")
    await driver.power_off(soft=True)
    assert sim.state()["events"] == ["power 1", "shutdown 1"]
    assert power_status(sim) == "Chassis Power is off"
    await driver.power_off(soft=True)
    assert sim.state()["events"] == ["power 1", "shutdown 1"]


async def test_boot_device_network_once_then_disk(sim: IpmiSim, drivers: Factory) -> None:
    driver = drivers(sim.port)
    await driver.set_boot_device(BootDevice.NETWORK, once=True)
    assert sim.state()["boot"] == "pxe"
    flags = sim.ipmitool("chassis", "bootparam", "get", "5")
    assert "Boot Device Selector : Force PXE" in flags
    # ipmi_sim keeps only the device: the persistent bit that `once` clears is not passed on
    # to its chassis program (the worker tests check that the bit is sent as asked).
    await driver.set_boot_device(BootDevice.DISK, once=False)
    assert sim.state()["boot"] == "default"
    flags = sim.ipmitool("chassis", "bootparam", "get", "5")
    assert "Boot Device Selector : Force Boot from default Hard-Drive" in flags
    sim.ipmitool("chassis", "bootdev", "pxe")
    assert sim.state()["boot"] == "pxe"


async def test_a_wrong_password_is_fatal_and_names_the_bmc_and_user(
    sim: IpmiSim, drivers: Factory
) -> None:
    driver = drivers(sim.port, password="not-the-password")
    with pytest.raises(FatalPowerError) as raised:
        await driver.power_on()
    assert str(raised.value) == (
        f"BMC {HOST}:{sim.port}: rejected the credentials for user 'admin'"
        " (Incorrect password provided)"
    )
    assert driver.worker_pid is None
    assert sim.state()["events"] == []


async def test_an_unknown_user_is_fatal(sim: IpmiSim, drivers: Factory) -> None:
    driver = drivers(sim.port, user="nobody")
    with pytest.raises(FatalPowerError, match=r"rejected the credentials for user 'nobody'"):
        await driver.query()


async def test_the_user_privilege_level_may_query_but_not_switch_power(
    sim: IpmiSim, drivers: Factory
) -> None:
    driver = drivers(sim.port, sim.viewer, sim.viewer_password, privilege="user")
    assert await driver.query() is PowerState.OFF
    with pytest.raises(FatalPowerError) as raised:
        await driver.power_on()
    assert str(raised.value).startswith(
        f"BMC {HOST}:{sim.port}: refused power on at privilege level user for user 'viewer'"
    )
    assert sim.state()["power"] == 0


async def test_a_cipher_suite_the_bmc_lacks_is_fatal(sim: IpmiSim, drivers: Factory) -> None:
    # ipmi_sim offers no SHA-256 suite (LAB.md: ipmitool -C 17 fails there as well).
    driver = drivers(sim.port, cipher_suite=17)
    with pytest.raises(FatalPowerError, match="does not accept IPMI cipher suite 17"):
        await driver.query()


@pytest.fixture
def swallowing_port() -> Iterator[int]:
    """A UDP port where packets are received and never answered (a hung BMC)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A UDP port nothing listens on (the kernel answers ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


async def threads_settle(before: set[threading.Thread], within: float = 2.0) -> set[str]:
    """The threads started since `before` that are still alive after `within` seconds."""
    deadline = time.monotonic() + within
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return {thread.name for thread in extra}


@pytest.mark.parametrize("bmc", ["swallowing_port", "closed_port"])
async def test_a_bmc_that_does_not_answer_is_retryable_within_the_deadline(
    bmc: str, request: pytest.FixtureRequest, drivers: Factory
) -> None:
    port: int = request.getfixturevalue(bmc)
    threads_before = set(threading.enumerate())
    driver = drivers(port, timeout=2)
    pids: set[int] = set()

    async def watch() -> None:
        while True:
            if driver.worker_pid is not None:
                pids.add(driver.worker_pid)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    async with LatenessProbe() as probe:
        with pytest.raises(RetryablePowerError) as raised:
            await driver.query()
    elapsed = time.monotonic() - started
    watcher.cancel()

    assert str(raised.value) == f"BMC {HOST}:{port}: no answer within 2 s"
    assert 2.0 <= elapsed < 2.0 + 1.0, elapsed
    assert len(pids) == 1
    assert all(gone(pid) for pid in pids), "the worker was left alive"
    assert driver.worker_pid is None
    assert await threads_settle(threads_before) == set()
    print(probe)
    assert probe.ticks > 100
    assert probe.worst_own < 0.020, str(probe)


@pytest.mark.slow
async def test_pyghmi_giving_up_by_itself_is_no_answer_too(
    swallowing_port: int, drivers: Factory
) -> None:
    # With a deadline longer than pyghmi's own (~5 s, LAB.md), its empty error text arrives
    # first and means the same thing.
    driver = drivers(swallowing_port, timeout=20)
    started = time.monotonic()
    with pytest.raises(RetryablePowerError) as raised:
        await driver.query()
    elapsed = time.monotonic() - started
    assert elapsed < 15
    seconds = re.fullmatch(
        rf"BMC {HOST}:{swallowing_port}: no answer within ([0-9.]+) s", str(raised.value)
    )
    assert seconds is not None, str(raised.value)
    assert 3 <= float(seconds.group(1)) <= elapsed + 0.1


class InFlight:
    """Counts, across relays, how many IPMI clients had a request waiting for its answer."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, int], int] = {}
        self.most_at_once = 0

    def sent(self, client: tuple[str, int]) -> None:
        self.pending[client] = self.pending.get(client, 0) + 1
        busy = sum(1 for count in self.pending.values() if count > 0)
        self.most_at_once = max(self.most_at_once, busy)

    def answered(self, client: tuple[str, int]) -> None:
        self.pending[client] = max(0, self.pending.get(client, 0) - 1)


class SlowRelay(asyncio.DatagramProtocol):
    """A UDP relay in front of the BMC that holds every answer back for `delay` seconds, so that
    two sessions working at the same time would be seen with requests in flight together."""

    def __init__(self, target: int, counter: InFlight, delay: float = 0.05) -> None:
        self.target = target
        self.counter = counter
        self.delay = delay
        self.front: asyncio.DatagramTransport | None = None
        self.backs: dict[tuple[str, int], socket.socket] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.front = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        back = self.backs.get(addr)
        if back is None:
            back = self.backs[addr] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.connect((HOST, self.target))
            back.setblocking(False)
            asyncio.get_running_loop().add_reader(back, self._from_bmc, back, addr)
        self.counter.sent(addr)
        back.send(data)

    def _from_bmc(self, back: socket.socket, client: tuple[str, int]) -> None:
        data = back.recv(65536)
        asyncio.get_running_loop().call_later(self.delay, self._deliver, data, client)

    def _deliver(self, data: bytes, client: tuple[str, int]) -> None:
        self.counter.answered(client)
        if self.front is not None:
            self.front.sendto(data, client)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for back in self.backs.values():
            loop.remove_reader(back)
            back.close()
        if self.front is not None:
            self.front.close()


@pytest.fixture
async def relays(sim: IpmiSim) -> AsyncIterator[Callable[..., Any]]:
    made: list[SlowRelay] = []

    async def start(counter: InFlight, delay: float = 0.05) -> int:
        relay = SlowRelay(sim.port, counter, delay)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: relay, local_addr=(HOST, 0)
        )
        made.append(relay)
        port: int = transport.get_extra_info("sockname")[1]
        return port

    yield start
    for relay in made:
        relay.close()


async def test_concurrent_calls_to_one_bmc_never_use_two_sessions_at_once(
    sim: IpmiSim, drivers: Factory, relays: Callable[..., Any]
) -> None:
    counter = InFlight()
    port = await relays(counter)
    first, second = drivers(port), drivers(port)  # two drivers for one BMC share its lock
    states = await asyncio.gather(
        first.query(), first.query(), second.query(), first.power_on(), second.query()
    )
    assert states[:3] == [PowerState.OFF] * 3
    assert states[4] is PowerState.ON
    assert len(counter.pending) == 2  # each driver talked over its own single session
    assert counter.most_at_once == 1


async def test_sessions_to_two_addresses_do_overlap_in_the_relay(
    sim: IpmiSim, drivers: Factory, relays: Callable[..., Any]
) -> None:
    # The check above can fail: drivers that do not share a lock are seen working together.
    counter = InFlight()
    first, second = drivers(await relays(counter, 0.1)), drivers(await relays(counter, 0.1))
    await asyncio.gather(*(driver.query() for driver in (first, second) for _ in range(3)))
    assert counter.most_at_once == 2
