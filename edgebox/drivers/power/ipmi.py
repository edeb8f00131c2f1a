"""IPMI power driver: IPMI 2.0 (RMCP+) over UDP through pyghmi, run in a worker process.

How it works: pyghmi blocks, and was seen to hang forever, so it never runs in this process.
Each driver (one BMC) starts `python -m edgebox.drivers.power.ipmi_worker` on its first call
and talks to it over stdin/stdout, one JSON line each way (`ipmi_protocol`), without ever
blocking the event loop (`line_worker`). The worker keeps one IPMI session for the calls that
follow; it ends after a failed call (pyghmi's session state is not trusted after an error) or
after `IDLE_EXIT` seconds without calls.

- One call at a time per BMC: a lock shared by every driver for the same host and port.
- At most `power.ipmi_max_workers` workers alive at once across the site (`worker_slots`): a
  call that needs a new worker beyond that waits, within its deadline, while the worker idle
  the longest logs out and ends.
- Before a worker starts, the BMC's host name is resolved and every address checked against
  the power targets policy (`power.allow_targets`); the worker is given the address, not the
  name, so what pyghmi talks to is what was checked. A refused address is a fatal error.
- Each call has a deadline, the `timeout` option, starting a worker included. When it passes,
  or the caller gives up (cancels), the worker is killed by its PID and reaped, and the error
  is retryable; the next call starts a fresh worker. Nothing stuck is left behind.
- `k_g` is a secret option: sealed at rest like the password, never shown (see `base`).
- on / off: Chassis Control power up / power down. Soft off: ACPI soft shutdown, skipped when
  the machine is off. Cycle: hard reset when on, power up when off (a reset of a machine that
  is off does nothing on most BMCs). Calls return when the BMC has accepted the command; the
  power queue polls `query` for the new state.
- Boot device: Set System Boot Options, parameter 5 (boot flags): PXE for network, the default
  hard disk for disk; `once` clears the persistent bit. The flags ask for legacy (BIOS) boot:
  IPMI has no "either" setting, and most UEFI BMCs apply the device regardless.

Errors (`ipmi_errors.power_error`): wrong user, password or k_g, a refused privilege level, a
cipher suite or command the BMC lacks are fatal; no answer, a busy BMC and anything else are
retryable. Every message names the BMC as host[:port].
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    DriverKind,
    FatalPowerError,
    OptionSpec,
    PowerDriver,
    RetryablePowerError,
    Target,
    check_options,
)
from edgebox.drivers.power.ipmi_errors import DEFAULT_PORT, bmc_name, power_error, seconds
from edgebox.drivers.power.ipmi_protocol import (
    Failure,
    ProtocolError,
    Reply,
    Request,
    SessionSettings,
    encode_request,
    parse_reply,
)
from edgebox.drivers.power.line_worker import LineWorker
from edgebox.drivers.power.targets import TargetRefused
from edgebox.drivers.power.worker_slots import WorkerSlots

log = logging.getLogger(__name__)

# A worker logs out and ends after this many seconds without a call: BMCs drop sessions idle
# for 30-60 s, and a worker costs ~30 MiB. A worker idle for STALE_AFTER is not reused (it may
# be ending on its own just as a request reaches it).
IDLE_EXIT = 25.0
STALE_AFTER = 20.0
# How long close() waits for the worker to log out before it kills it.
CLOSE_GRACE = 3.0

PRIVILEGES = {"administrator": 4, "operator": 3, "user": 2}
CIPHER_SUITES = (3, 17)
_BOOT_DEVICES = {BootDevice.NETWORK: "network", BootDevice.DISK: "hd"}
_WORDS = {
    "on": "power on",
    "off": "power off",
    "soft_off": "soft power off",
    "cycle": "power cycle",
    "query": "power query",
    "boot": "setting the boot device",
}

OPTIONS: dict[str, OptionSpec] = {
    "port": OptionSpec(
        int, DEFAULT_PORT, "UDP port of the BMC", minimum=1, maximum=65535, target=True
    ),
    "privilege": OptionSpec(
        str,
        "administrator",
        "IPMI privilege level to ask for (power control needs operator or administrator)",
        choices=tuple(PRIVILEGES),
    ),
    "cipher_suite": OptionSpec(
        int,
        3,
        "RMCP+ cipher suite: 3 (HMAC-SHA1, AES; every IPMI 2.0 BMC) or 17 (HMAC-SHA256, AES)",
        choices=CIPHER_SUITES,
    ),
    "k_g": OptionSpec(
        str,
        "",
        "the BMC key (K_g) as hex, up to 20 bytes; empty when the BMC has none (a secret:"
        " sealed at rest, never shown)",
        secret=True,
    ),
    "timeout": OptionSpec(
        int,
        10,
        "seconds one call may take, login included; then the BMC counts as not answering",
        minimum=1,
        maximum=120,
    ),
}


def parse_k_g(text: str) -> str:
    """The BMC key as lower-case hex ("0x" allowed); ValueError when it is not 0-20 bytes."""
    digits = text.strip().lower().removeprefix("0x")
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"option k_g: expected hex digits, got {text!r}") from None
    if len(key) > 20:
        raise ValueError(f"option k_g: at most 20 bytes (40 hex digits), got {len(key)}")
    return key.hex()


# The lock of each BMC (event loop, host, port), shared by the drivers alive for it. An
# asyncio.Lock belongs to one event loop, hence the loop in the key.
_BMC_LOCKS: weakref.WeakValueDictionary[
    tuple[asyncio.AbstractEventLoop, str, int], asyncio.Lock
] = weakref.WeakValueDictionary()


def worker_argv() -> list[str]:
    return [sys.executable, "-m", "edgebox.drivers.power.ipmi_worker"]


# The address a worker is to talk to for (host, port): resolved and checked (`TargetGuard`).
Locate = Callable[[str, int], Awaitable[str]]


class IpmiDriver:
    """One IPMI BMC, served by one worker process at a time."""

    def __init__(
        self,
        settings: SessionSettings,
        *,
        privilege: str,
        timeout: float,
        slots: WorkerSlots,
        locate: Locate,
        argv: Sequence[str] | None = None,
    ) -> None:
        self._settings = settings
        self._privilege = privilege
        self._timeout = timeout
        self._slots = slots
        self._locate = locate
        self._argv = list(argv or worker_argv())
        self.address = bmc_name(settings.host, settings.port)
        self._lock: asyncio.Lock | None = None  # taken at the first call, in its loop
        self._worker: LineWorker | None = None
        self._worker_used_at = 0.0
        self._waiting_for_slot = False
        self._next_id = 0

    @property
    def worker_pid(self) -> int | None:
        """The PID of the current worker process, if one is running."""
        return self._worker.pid if self._worker is not None else None

    async def power_on(self) -> None:
        await self._call("on")

    async def power_off(self, *, soft: bool = False) -> None:
        await self._call("soft_off" if soft else "off")

    async def power_cycle(self) -> None:
        await self._call("cycle")

    async def query(self) -> PowerState:
        result = await self._call("query")
        if result not in ("on", "off"):
            raise RetryablePowerError(self.address, f"power query answered {result!r}")
        return PowerState(result)

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None:
        await self._call("boot", device=_BOOT_DEVICES[device], persistent=not once)

    async def close(self) -> None:
        async with self._bmc_lock():
            self._slots.busy(self)
            await self._end_worker()

    def _bmc_lock(self) -> asyncio.Lock:
        if self._lock is None:
            key = (asyncio.get_running_loop(), self._settings.host, self._settings.port)
            self._lock = _BMC_LOCKS.setdefault(key, asyncio.Lock())
        return self._lock

    async def _call(self, op: str, *, device: str = "", persistent: bool = False) -> str:
        self._next_id += 1
        request = Request(self._next_id, op, device, persistent)
        async with self._bmc_lock():
            self._slots.busy(self)  # not to be ended by a caller waiting for a worker slot
            try:
                return await self._call_locked(request, op)
            finally:
                if self._worker is not None and not self._worker.exited:
                    self._slots.idle(self, self._end_soon)

    async def _call_locked(self, request: Request, op: str) -> str:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._exchange(request)
        except TimeoutError:
            await self._kill_worker()
            if self._waiting_for_slot:
                self._waiting_for_slot = False
                raise RetryablePowerError(
                    self.address,
                    f"no IPMI worker free within {seconds(self._timeout)} s: all"
                    f" {self._slots.limit} (power.ipmi_max_workers) are busy; it is retried,"
                    " or raise power.ipmi_max_workers",
                ) from None
            raise RetryablePowerError(
                self.address, f"no answer within {seconds(self._timeout)} s"
            ) from None
        except (ValueError, OSError) as exc:  # garbage, a broken pipe, no executable
            await self._kill_worker()
            raise RetryablePowerError(
                self.address, f"the IPMI worker failed during {_WORDS[op]}: {exc}"
            ) from None
        except BaseException:  # cancelled: the worker's state is unknown
            self._waiting_for_slot = False
            self._kill_worker_now()
            raise
        if reply is None:
            code = await self._kill_worker()
            raise RetryablePowerError(
                self.address, f"the IPMI worker ended during {_WORDS[op]} (exit code {code})"
            )
        if not reply.ok:
            await self._end_worker()  # it ends itself after a failure
            error = power_error(
                self.address,
                reply.failure or Failure.FAILED,
                reply.detail,
                what=_WORDS[op],
                settings=self._settings,
                privilege=self._privilege,
                elapsed=loop.time() - started,
            )
            log.warning("ipmi %s failed address=%s: %s", op, self.address, error.message)
            raise error
        log.debug("ipmi %s address=%s result=%s", op, self.address, reply.result or "ok")
        return reply.result

    async def _exchange(self, request: Request) -> Reply | None:
        """Send `request` to a live worker and read its reply; None when it ended without one."""
        worker = await self._live_worker()
        worker.send_line(encode_request(request))
        line = await worker.read_line()
        self._worker_used_at = asyncio.get_running_loop().time()
        if not line:
            return None
        reply = parse_reply(line.decode("utf-8", "replace"))
        if reply.id != request.id:
            raise ProtocolError(f"reply to request {reply.id}, expected {request.id}")
        return reply

    async def _live_worker(self) -> LineWorker:
        """The current worker, or a new one when there is none or it may be idling out."""
        now = asyncio.get_running_loop().time()
        if self._worker is not None and (
            self._worker.exited or now - self._worker_used_at > STALE_AFTER
        ):
            await self._end_worker()
        if self._worker is None:
            settings = await self._located_settings()
            self._waiting_for_slot = True
            await self._slots.acquire()
            self._waiting_for_slot = False
            try:
                worker = await LineWorker.start(self._argv)
            except BaseException:
                self._slots.release()
                raise
            worker.on_exit(functools.partial(self._worker_exited, worker))
            self._worker = worker
            worker.send_line(settings.encode())
            self._worker_used_at = asyncio.get_running_loop().time()
            log.debug("ipmi worker started address=%s pid=%d", self.address, worker.pid)
        return self._worker

    async def _located_settings(self) -> SessionSettings:
        """The session settings with the host resolved to the checked address to talk to."""
        host, port = self._settings.host, self._settings.port
        try:
            address = await self._locate(host, port)
        except TargetRefused as exc:
            raise FatalPowerError(self.address, str(exc)) from None
        except OSError as exc:
            raise RetryablePowerError(
                self.address, f"cannot resolve the host name {host!r} ({exc})"
            ) from None
        return dataclasses.replace(self._settings, host=address)

    def _worker_exited(self, worker: LineWorker) -> None:
        self._slots.release()
        if self._worker is worker:
            self._slots.busy(self)  # nothing left to end

    def _end_soon(self) -> None:
        """Asked by the worker slots to make room: the idle worker logs out and ends."""
        worker, self._worker = self._worker, None
        if worker is not None:
            log.debug("ipmi worker ends to make room address=%s pid=%d", self.address, worker.pid)
            worker.end_soon(CLOSE_GRACE)

    async def _end_worker(self) -> None:
        """Let the worker log out and exit (killed after CLOSE_GRACE seconds)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.finish(CLOSE_GRACE)

    async def _kill_worker(self) -> int | None:
        """Kill the worker and wait until it is reaped; its exit code."""
        worker = self._kill_worker_now()
        return None if worker is None else await worker.wait()

    def _kill_worker_now(self) -> LineWorker | None:
        """Kill the worker without waiting (a cancelled call must not wait): it is reaped as
        soon as it has died."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
        return worker


def create(config: BmcConfig, env: DriverEnv) -> PowerDriver:
    """A driver for `config`; no process starts until the first call."""
    try:
        options = check_options(KIND, config.options)
        if not config.address.strip():
            raise ValueError("the ipmi driver needs the BMC's address (host name or IP)")
        k_g = parse_k_g(str(options["k_g"]))
    except ValueError as exc:
        raise FatalPowerError(config.address, str(exc)) from None
    port, cipher_suite, timeout = options["port"], options["cipher_suite"], options["timeout"]
    assert isinstance(port, int) and isinstance(cipher_suite, int) and isinstance(timeout, int)
    privilege = str(options["privilege"])
    settings = SessionSettings(
        host=config.address.strip(),
        port=port,
        username=config.username,
        password=config.password,
        privilege=PRIVILEGES[privilege],
        cipher_suite=cipher_suite,
        k_g=k_g,
        idle_exit=IDLE_EXIT,
    )
    return IpmiDriver(
        settings,
        privilege=privilege,
        timeout=timeout,
        slots=env.workers,
        locate=env.targets.address,
    )


def targets(config: BmcConfig) -> list[Target]:
    port = check_options(KIND, config.options)["port"]
    assert isinstance(port, int)
    return [Target("address", config.address.strip(), port)] if config.address.strip() else []


KIND = DriverKind(
    name="ipmi",
    description="IPMI 2.0 BMC over the LAN (RMCP+), through pyghmi in a worker process",
    options=OPTIONS,
    needs_address=True,
    create=create,
    targets=targets,
)
