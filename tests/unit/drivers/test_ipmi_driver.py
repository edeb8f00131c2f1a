"""The IPMI driver: its options, its error messages, and how it runs, serializes and kills its
worker process (a scripted stand-in for pyghmi, fake_ipmi_worker.py; no BMC, no network)."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power import ipmi
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    FatalPowerError,
    PowerError,
    RetryablePowerError,
    check_options,
)
from edgebox.drivers.power.ipmi import (
    IpmiDriver,
    Locate,
    bmc_name,
    create,
    parse_k_g,
    power_error,
)
from edgebox.drivers.power.ipmi_protocol import Failure, SessionSettings
from edgebox.drivers.power.registry import driver_kind
from edgebox.drivers.power.worker_slots import WorkerSlots
from tests.lab.loop_lateness import LatenessProbe

FAKE_WORKER = Path(__file__).with_name("fake_ipmi_worker.py")
ENV = DriverEnv.strict()

# --- options and configuration -----------------------------------------------------------------


def test_the_registry_finds_the_driver_and_its_defaults() -> None:
    kind = driver_kind("ipmi")
    assert kind is ipmi.KIND
    assert kind.needs_address
    assert check_options(kind, {}) == {
        "port": 623,
        "privilege": "administrator",
        "cipher_suite": 3,
        "k_g": "",
        "timeout": 10,
    }


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"privilege": "admin"}, "expected one of administrator, operator, user"),
        ({"cipher_suite": 0}, "expected one of 3, 17"),
        ({"port": 0}, "from 1 to 65535"),
        ({"timeout": 0}, "from 1 to 120"),
        ({"kg": "00"}, "unknown option 'kg'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        check_options(ipmi.KIND, options)


def test_k_g_is_hex_of_at_most_20_bytes() -> None:
    assert parse_k_g("") == ""
    assert parse_k_g("0x0A0b") == "0a0b"
    assert parse_k_g(" 61 62 ") == "6162"
    assert parse_k_g("ab" * 20) == "ab" * 20
    with pytest.raises(ValueError, match="hex digits"):
        parse_k_g("secret")
    with pytest.raises(ValueError, match="at most 20 bytes"):
        parse_k_g("ab" * 21)


def test_create_refuses_a_bad_key_or_no_address_naming_the_bmc() -> None:
    with pytest.raises(FatalPowerError, match=r"^BMC 10\.0\.0\.5: option k_g: expected hex"):
        create(BmcConfig("ipmi", "10.0.0.5", "admin", "pw", {"k_g": "zz"}), ENV)
    with pytest.raises(FatalPowerError, match="needs the BMC's address"):
        create(BmcConfig("ipmi", " ", "admin", "pw"), ENV)


def test_create_starts_nothing() -> None:
    driver = create(BmcConfig("ipmi", "10.0.0.5", "admin", "pw", {"port": 6230}), ENV)
    assert isinstance(driver, IpmiDriver)
    assert driver.worker_pid is None
    assert driver.address == "10.0.0.5:6230"


def test_the_bmc_is_named_with_its_port_unless_it_is_623() -> None:
    assert bmc_name("10.0.0.5", 623) == "10.0.0.5"
    assert bmc_name("127.0.0.1", 9001) == "127.0.0.1:9001"
    assert bmc_name("fd00::5", 9001) == "[fd00::5]:9001"


# --- error messages ----------------------------------------------------------------------------

SETTINGS = SessionSettings("127.0.0.1", 9001, "admin", "pw", 3, 17, "", idle_exit=25.0)


def error(failure: Failure, detail: str, **overrides: object) -> PowerError:
    settings = overrides.pop("settings", SETTINGS)
    assert isinstance(settings, SessionSettings)
    return power_error(
        "127.0.0.1:9001",
        failure,
        detail,
        what="power on",
        settings=settings,
        privilege="operator",
        elapsed=float(overrides.pop("elapsed", 0.01)),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("failure", "detail", "fatal", "message"),
    [
        (
            Failure.CREDENTIALS,
            "Incorrect password provided",
            True,
            "BMC 127.0.0.1:9001: rejected the credentials for user 'admin'"
            " (Incorrect password provided)",
        ),
        (
            Failure.CREDENTIALS,
            "Invalid RAKP4 integrity code (wrong Kg?)",
            True,
            "BMC 127.0.0.1:9001: rejected the credentials for user 'admin' or the BMC key (k_g)"
            " (Invalid RAKP4 integrity code (wrong Kg?))",
        ),
        (
            Failure.PRIVILEGE,
            "Insufficient privilege level or firmware firewall",
            True,
            "BMC 127.0.0.1:9001: refused power on at privilege level operator for user 'admin'"
            " (Insufficient privilege level or firmware firewall)",
        ),
        (
            Failure.CIPHER_SUITE,
            "Invalid authentication algorithm",
            True,
            "BMC 127.0.0.1:9001: does not accept IPMI cipher suite 17 (Invalid authentication"
            " algorithm); set the cipher_suite option to one it offers",
        ),
        (
            Failure.UNSUPPORTED,
            "Invalid command",
            True,
            "BMC 127.0.0.1:9001: does not support power on (Invalid command)",
        ),
        (Failure.NO_ANSWER, "", False, "BMC 127.0.0.1:9001: no answer within 5 s"),
        (
            Failure.BUSY,
            "Node Busy",
            False,
            "BMC 127.0.0.1:9001: is busy and refused power on for now (Node Busy)",
        ),
        (Failure.FAILED, "Unspecified", False, "BMC 127.0.0.1:9001: power on failed (Unspecified)"),
    ],
)
def test_each_failure_becomes_a_sentence_with_the_address(
    failure: Failure, detail: str, fatal: bool, message: str
) -> None:
    raised = error(failure, detail, elapsed=4.96)
    assert isinstance(raised, FatalPowerError if fatal else RetryablePowerError)
    assert raised.fatal is fatal
    assert str(raised) == message
    assert raised.address == "127.0.0.1:9001"


def test_no_answer_states_the_time_it_waited() -> None:
    assert str(error(Failure.NO_ANSWER, "timeout", elapsed=2.04)).endswith("no answer within 2 s")
    assert str(error(Failure.NO_ANSWER, "[Errno 101] Network is unreachable", elapsed=0.25)) == (
        "BMC 127.0.0.1:9001: no answer within 0.2 s ([Errno 101] Network is unreachable)"
    )


def test_a_configured_k_g_is_mentioned_when_credentials_fail() -> None:
    keyed = SessionSettings("127.0.0.1", 9001, "admin", "pw", 4, 3, "0a", idle_exit=25.0)
    assert "or the BMC key (k_g)" in str(
        error(Failure.CREDENTIALS, "Incorrect password provided", settings=keyed)
    )


# --- the worker process ------------------------------------------------------------------------


def gone(pid: int) -> bool:
    """True when `pid` no longer exists (reaped), or is a zombie nobody waits for yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


async def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def as_named(host: str, port: int) -> str:
    """The fake worker picks its behaviour by host name: pass the name on, unresolved."""
    return host


class Rig:
    """Fake-worker drivers sharing one journal file and one cap on workers; every driver is
    closed at the end."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.drivers: list[IpmiDriver] = []
        self.slots = WorkerSlots(32)

    def driver(
        self, host: str, *, port: int = 623, timeout: float = 5.0, locate: Locate = as_named
    ) -> IpmiDriver:
        settings = SessionSettings(host, port, "admin", "pw", 4, 3, "", idle_exit=25.0)
        driver = IpmiDriver(
            settings,
            privilege="administrator",
            timeout=timeout,
            slots=self.slots,
            locate=locate,
            argv=[sys.executable, str(FAKE_WORKER)],
        )
        self.drivers.append(driver)
        return driver

    def entries(self) -> list[tuple[int, float, str]]:
        if not self.journal.exists():
            return []
        rows = []
        for line in self.journal.read_text().splitlines():
            pid, at, text = line.split(" ", 2)
            rows.append((int(pid), float(at), text))
        return rows


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    journal = tmp_path / "journal"
    monkeypatch.setenv("FAKE_IPMI_JOURNAL", str(journal))
    rig = Rig(journal)
    yield rig
    for driver in rig.drivers:
        await driver.close()


async def pid_while(driver: IpmiDriver, call: Callable[[], object]) -> tuple[int, object]:
    """Run `call` (a coroutine function) and catch the worker's PID while it runs."""
    task = asyncio.ensure_future(call())  # type: ignore[arg-type]
    while driver.worker_pid is None and not task.done():  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.005)
    pid = driver.worker_pid
    assert pid is not None, "the call ended before a worker started"
    try:
        return pid, await task
    except PowerError as exc:
        return pid, exc


async def test_one_worker_serves_every_call_and_close_ends_it_cleanly(rig: Rig) -> None:
    driver = rig.driver("ok")
    assert await driver.query() is PowerState.ON
    pid = driver.worker_pid
    assert pid is not None
    await driver.power_on()
    await driver.power_off(soft=True)
    await driver.power_off()
    await driver.power_cycle()
    await driver.set_boot_device(BootDevice.NETWORK)
    await driver.set_boot_device(BootDevice.DISK, once=False)
    assert driver.worker_pid == pid
    await driver.close()
    assert driver.worker_pid is None
    assert await wait_gone(pid)
    texts = [text for who, _, text in rig.entries() if who == pid]
    assert texts[0] == "login"
    assert texts.count("login") == 1
    assert "start power shutdown" in texts  # soft off → ACPI shutdown
    assert "start power boot" in texts  # cycle → pyghmi's "boot" (reset, or on when off)
    assert "start boot network False" in texts  # once → not persistent
    assert "start boot hd True" in texts
    assert texts[-1] == "logout"


async def test_a_hung_call_is_killed_at_the_deadline_without_blocking_the_loop(
    rig: Rig,
) -> None:
    driver = rig.driver("hang", timeout=1)
    started = time.monotonic()
    async with LatenessProbe() as probe:
        pid, outcome = await pid_while(driver, driver.query)
    elapsed = time.monotonic() - started
    assert isinstance(outcome, RetryablePowerError)
    assert str(outcome) == "BMC hang: no answer within 1 s"
    assert 1.0 <= elapsed < 2.0
    assert gone(pid)  # killed and reaped before the error was raised
    assert driver.worker_pid is None
    assert probe.ticks > 50
    assert probe.worst_own < 0.020, str(probe)


async def test_a_hung_login_is_killed_too(rig: Rig) -> None:
    driver = rig.driver("hang-login", timeout=1)
    pid, outcome = await pid_while(driver, driver.power_on)
    assert isinstance(outcome, RetryablePowerError)
    assert "no answer within 1 s" in str(outcome)
    assert gone(pid)


async def test_after_a_kill_the_next_call_gets_a_fresh_worker(rig: Rig) -> None:
    driver = rig.driver("hang-first", timeout=1)
    first, outcome = await pid_while(driver, driver.query)
    assert isinstance(outcome, RetryablePowerError)
    assert await driver.query() is PowerState.ON
    assert driver.worker_pid not in (None, first)


async def test_a_cancelled_call_kills_its_worker(rig: Rig) -> None:
    driver = rig.driver("hang", timeout=30)
    task = asyncio.ensure_future(driver.query())
    while driver.worker_pid is None:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.005)
    pid = driver.worker_pid
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert driver.worker_pid is None
    assert await wait_gone(pid), "the worker of a cancelled call was left running"


async def test_a_worker_that_dies_is_a_retryable_error(rig: Rig) -> None:
    driver = rig.driver("crash")
    pid, outcome = await pid_while(driver, driver.power_cycle)
    assert isinstance(outcome, RetryablePowerError)
    assert str(outcome) == "BMC crash: the IPMI worker ended during power cycle (exit code 3)"
    assert gone(pid)


async def test_a_refused_login_is_fatal_and_ends_the_worker(rig: Rig) -> None:
    driver = rig.driver("refuse")
    pid, outcome = await pid_while(driver, driver.query)
    assert isinstance(outcome, FatalPowerError)
    assert str(outcome) == (
        "BMC refuse: rejected the credentials for user 'admin' (Incorrect password provided)"
    )
    assert gone(pid)
    assert driver.worker_pid is None


def busy_spans(rig: Rig) -> list[tuple[float, float]]:
    """The (start, end) of every call the fake BMCs ran, from the journal."""
    open_at: dict[int, float] = {}
    spans = []
    for pid, at, text in rig.entries():
        if text.startswith("start "):
            open_at[pid] = at
        elif text.startswith("end "):
            spans.append((open_at.pop(pid), at))
    return sorted(spans)


def overlapping(spans: list[tuple[float, float]]) -> bool:
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


async def test_calls_to_one_bmc_run_one_at_a_time_even_from_two_drivers(rig: Rig) -> None:
    first, second = rig.driver("slow"), rig.driver("slow")
    await asyncio.gather(first.query(), second.query(), first.power_on(), second.query())
    spans = busy_spans(rig)
    assert len(spans) == 4
    assert not overlapping(spans), spans


async def test_calls_to_different_bmcs_do_overlap(rig: Rig) -> None:
    # The check above can fail: without the shared lock, calls do overlap.
    first, second = rig.driver("slow", port=623), rig.driver("slow", port=624)
    await asyncio.gather(first.query(), second.query())
    assert overlapping(busy_spans(rig))


async def test_a_stale_worker_is_replaced_before_it_idles_out(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipmi, "STALE_AFTER", 0.0)
    driver = rig.driver("ok")
    await driver.query()
    first = driver.worker_pid
    assert first is not None
    await driver.query()
    assert driver.worker_pid != first
    assert await wait_gone(first)
    assert [text for pid, _, text in rig.entries() if pid == first][-1] == "logout"


def test_the_fake_worker_is_where_the_tests_expect_it() -> None:
    assert FAKE_WORKER.is_file()
    assert os.access(sys.executable, os.X_OK)
