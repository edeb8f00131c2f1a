"""The lab's "BMC": QEMU's machine protocol (QMP), so lab VMs take the same power path as servers.

The address is the path of the VM's QMP unix socket. `edgebox lab` starts its VMs with
`-qmp unix:PATH,server=on,wait=off -no-shutdown`, so a guest that powers itself off leaves
QEMU alive in the "shutdown" state, where this driver can switch it on again. Each call opens
one short QMP session (QEMU serves one client at a time; others wait in the backlog).

How the power words map onto QEMU (measured on QEMU 7.2):
- on: the VM is "running". Every other run state (prelaunch with -S, paused, shutdown,
  guest-panicked, ...) is off: no guest code runs.
- power_on: `system_reset`, wait for QEMU's RESET event, then `cont`. The reset is there even
  for a VM that never ran (prelaunch): QEMU computes the firmware boot order at reset, so a
  boot device chosen after QEMU started is only seen through one. A VM that is on is left alone.
- power_off, hard: `stop` freezes the VM where it is. It is not a real power loss, so the next
  power_on resets it and the machine boots fresh, as real hardware would after a hard off.
- power_off, soft: `system_powerdown` sends the ACPI power button; the guest decides (the
  queue polls for the result). An off VM is left alone.
- power_cycle: `system_reset` of a running VM; an off VM is powered on (which resets it).
- set_boot_device: the NIC and the disk are found by their QEMU device ids (options `nic_id`,
  `disk_id`; `edgebox lab` names them nic0 and disk0) and their `bootindex` values are swapped
  with `qom-set` so that the chosen one comes first. QEMU refuses two devices with the same
  index, so the swap goes through -1 (no index). It takes effect at the next reset.

One-time boot (`once=True`) is not emulated: the order set here stays until it is set again.
QEMU has no "after the next boot" hook a per-call session could use, and a reboot started by
the guest (the agent's after a deploy) never passes through this driver. edgebox does not
need it: machines network-boot first, and edgebox's boot script sends a machine that should
run from its disk (deployed) on to the local disk, as with any BMC that forgets the flag.

Errors: a socket that is missing or refuses connections is retryable (the VM is not running,
or QEMU is starting); a command QEMU refuses is fatal, with QEMU's own description.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    DriverKind,
    FatalPowerError,
    OptionSpec,
    PowerError,
    RetryablePowerError,
    check_options,
)
from edgebox.drivers.qmp import (
    QmpClient,
    QmpCommandError,
    QmpConnectionError,
    QmpError,
)

log = logging.getLogger(__name__)

_RUNNING = "running"
_NO_INDEX = -1  # QEMU's bootindex for "not in the boot order"


class LabQmpDriver:
    """One lab VM, reached through its QMP socket."""

    def __init__(self, config: BmcConfig) -> None:
        try:
            options = check_options(KIND, config.options)
        except ValueError as exc:
            raise FatalPowerError(config.address, str(exc)) from exc
        self.socket = config.address
        self.timeout = float(options["timeout"])
        self.nic_id = str(options["nic_id"])
        self.disk_id = str(options["disk_id"])

    async def query(self) -> PowerState:
        async with self._session() as qmp:
            return PowerState.ON if await _status(qmp) == _RUNNING else PowerState.OFF

    async def power_on(self) -> None:
        async with self._session() as qmp:
            if await _status(qmp) != _RUNNING:
                await _reset_and_run(qmp)

    async def power_off(self, *, soft: bool = False) -> None:
        async with self._session() as qmp:
            if await _status(qmp) == _RUNNING:
                await qmp.execute("system_powerdown" if soft else "stop")

    async def power_cycle(self) -> None:
        async with self._session() as qmp:
            if await _status(qmp) == _RUNNING:
                await qmp.execute("system_reset")
                await qmp.wait_event("RESET")
            else:
                await _reset_and_run(qmp)

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None:
        first, other = (
            (self.nic_id, self.disk_id)
            if device == BootDevice.NETWORK
            else (self.disk_id, self.nic_id)
        )
        async with self._session() as qmp:
            first_index = await self._bootindex(qmp, first)
            other_index = await self._bootindex(qmp, other)
            if first_index >= 0 and (other_index < 0 or first_index < other_index):
                return
            if first_index >= 0 and other_index >= 0:
                low, high = sorted((first_index, other_index))
            else:
                low, high = 1, 2
            log.info("lab boot order socket=%s first=%s once=%s", self.socket, device, once)
            await _set_bootindex(qmp, other, _NO_INDEX)
            await _set_bootindex(qmp, first, low)
            await _set_bootindex(qmp, other, high)

    async def close(self) -> None:
        """Nothing to release: every call has its own session."""

    async def _bootindex(self, qmp: QmpClient, device_id: str) -> int:
        try:
            value = await qmp.execute(
                "qom-get", {"path": _device_path(device_id), "property": "bootindex"}
            )
        except QmpCommandError as exc:
            raise FatalPowerError(
                self.socket,
                f"cannot read the boot index of QEMU device id={device_id} (start the VM with"
                f" ids on its NIC and disk, or set the nic_id/disk_id options): {exc.desc}",
            ) from exc
        return int(value)

    def _session(self) -> _Session:
        return _Session(self.socket, self.timeout)


class _Session:
    """A QMP session whose failures come out as power errors naming the socket."""

    def __init__(self, socket: str, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout
        self._client: QmpClient | None = None

    async def __aenter__(self) -> QmpClient:
        if not self.socket:
            raise FatalPowerError("", "the lab driver needs the VM's QMP socket path as address")
        try:
            self._client = await QmpClient.connect(self.socket, self.timeout)
        except QmpError as exc:
            raise _power_error(self.socket, exc) from exc
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
        if isinstance(exc, QmpError):
            raise _power_error(self.socket, exc) from exc


def _power_error(socket: str, exc: QmpError) -> PowerError:
    if isinstance(exc, QmpCommandError):
        return FatalPowerError(socket, f"QEMU refused {exc.command}: {exc.desc}")
    if isinstance(exc, QmpConnectionError):
        if isinstance(exc.__cause__, PermissionError):
            return FatalPowerError(socket, f"QMP socket {socket}: permission denied")
        return RetryablePowerError(socket, f"QMP socket {socket}: {exc} (VM not running?)")
    return FatalPowerError(socket, f"QMP socket {socket} does not speak QMP: {exc}")


async def _status(qmp: QmpClient) -> str:
    reply: Mapping[str, Any] = await qmp.execute("query-status")
    return str(reply.get("status", ""))


async def _reset_and_run(qmp: QmpClient) -> None:
    # The reset is queued for QEMU's main loop; `cont` before it lands would be refused in the
    # shutdown state ("Resetting the Virtual Machine is required"), so wait for its event.
    await qmp.execute("system_reset")
    await qmp.wait_event("RESET")
    await qmp.execute("cont")


def _device_path(device_id: str) -> str:
    return f"/machine/peripheral/{device_id}"  # where QEMU puts devices given an id=


async def _set_bootindex(qmp: QmpClient, device_id: str, index: int) -> None:
    await qmp.execute(
        "qom-set", {"path": _device_path(device_id), "property": "bootindex", "value": index}
    )


def create(config: BmcConfig, env: DriverEnv) -> LabQmpDriver:
    """The lab's QMP socket is a local file, not a network target: `env` is not needed."""
    return LabQmpDriver(config)


KIND = DriverKind(
    name="lab",
    description="a QEMU VM of edgebox's virtual lab, through its QMP socket (address: its path)",
    options={
        "nic_id": OptionSpec(str, "nic0", "QEMU device id of the NIC that network-boots"),
        "disk_id": OptionSpec(str, "disk0", "QEMU device id of the boot disk"),
        "timeout": OptionSpec(
            int, 10, "seconds to wait for each QMP answer", minimum=1, maximum=300
        ),
    },
    needs_address=True,
    create=create,
)
