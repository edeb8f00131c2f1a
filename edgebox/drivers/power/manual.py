"""The manual driver: a machine without a BMC that edgebox can drive, so a person does it.

Every operation raises ManualActionRequired with one sentence saying what to do at the
machine; the power queue shows it and waits for the person. The driver knows nothing but its
BmcConfig, so the sentence is about the operation ("power on this machine by hand, booting from
the network once") and the queue adds which machine. The power state is never known.

A boot device cannot be set ahead of time by hand, so `set_boot_device` asks for the whole
start ("power on or restart ... booting from the network once"): in a power-on-from-network
operation it is the first call and the only sentence the person sees.
"""

from __future__ import annotations

from typing import NoReturn

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import BmcConfig, DriverEnv, DriverKind, ManualActionRequired

_BOOT_FROM = {
    BootDevice.NETWORK: "the network (PXE; usually chosen in the firmware's boot menu, F12)",
    BootDevice.DISK: "its local disk",
}


class ManualDriver:
    """Asks a person for every power operation."""

    def __init__(self, config: BmcConfig) -> None:
        self.address = config.address  # a note where the machine is, if the operator gave one

    async def power_on(self) -> None:
        self._ask("power on this machine by hand")

    async def power_off(self, *, soft: bool = False) -> None:
        if soft:
            self._ask("shut this machine down from its operating system, or press its power"
                      " button once and wait for it to switch off")  # fmt: skip
        self._ask("power off this machine by hand (hold its power button until it is off)")

    async def power_cycle(self) -> None:
        self._ask("power cycle this machine by hand: switch it off, then on again")

    async def query(self) -> PowerState:
        return PowerState.UNKNOWN

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None:
        where = _BOOT_FROM[BootDevice(device)]
        if once:
            self._ask(f"power on (or restart) this machine by hand, booting from {where} once")
        self._ask(f"make {where} the first boot device in this machine's firmware setup,"
                  " then power it on (or restart it) by hand")  # fmt: skip

    async def close(self) -> None:
        """Nothing to release."""

    def _ask(self, action: str) -> NoReturn:
        raise ManualActionRequired(self.address, action)


def create(config: BmcConfig, env: DriverEnv) -> ManualDriver:
    return ManualDriver(config)


KIND = DriverKind(
    name="manual",
    description="no BMC: edgebox asks a person to press the buttons",
    options={},
    needs_address=False,
    create=create,
)
