"""Power states, boot devices and power operations: the words the power drivers and queue share."""

from __future__ import annotations

from enum import StrEnum


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"  # never queried, or the driver cannot tell (manual)
    ERROR = "error"  # the last query failed


class BootDevice(StrEnum):
    NETWORK = "network"
    DISK = "disk"


class PowerOp(StrEnum):
    """One operation the power queue runs against a machine's BMC."""

    ON = "on"  # power on as the machine is configured to boot
    ON_NETWORK = "on-network"  # set a one-time network boot, then power on (or cycle if on)
    OFF = "off"  # hard off
    SOFT_OFF = "soft-off"  # ask the OS to shut down
    CYCLE = "cycle"
    QUERY = "query"
    # make the local disk the first boot device, for good; the power stays as it is (after a
    # deploy, so that a network-first machine still boots what was written)
    BOOT_DISK = "boot-disk"


class PowerOpState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # a person must act (manual driver)
    DONE = "done"
    FAILED = "failed"


FINISHED_OP_STATES = frozenset({PowerOpState.DONE, PowerOpState.FAILED})

# The power state an operation leaves the machine in, when it succeeds.
EXPECTED_STATE: dict[PowerOp, PowerState] = {
    PowerOp.ON: PowerState.ON,
    PowerOp.ON_NETWORK: PowerState.ON,
    PowerOp.OFF: PowerState.OFF,
    PowerOp.SOFT_OFF: PowerState.OFF,
    PowerOp.CYCLE: PowerState.ON,
}
