"""The manual driver: each operation asks a person, in a sentence about that operation."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import BmcConfig, DriverEnv, ManualActionRequired
from edgebox.drivers.power.manual import ManualDriver
from edgebox.drivers.power.registry import driver_kind


async def asked(call: Coroutine[Any, Any, object]) -> str:
    with pytest.raises(ManualActionRequired) as raised:
        await call
    assert not raised.value.fatal  # the queue waits for the person instead of failing
    return raised.value.message


async def test_every_operation_asks_for_that_operation() -> None:
    manual = ManualDriver(BmcConfig("manual"))
    assert await asked(manual.power_on()) == "power on this machine by hand"
    assert (await asked(manual.power_off())).startswith("power off this machine by hand")
    assert (await asked(manual.power_off(soft=True))).startswith("shut this machine down")
    assert (await asked(manual.power_cycle())).startswith("power cycle this machine by hand")


async def test_boot_device_asks_for_the_whole_start() -> None:
    manual = ManualDriver(BmcConfig("manual"))
    network_once = await asked(manual.set_boot_device(BootDevice.NETWORK))
    assert network_once.startswith("power on (or restart) this machine by hand, booting from")
    assert "the network" in network_once and network_once.endswith("once")
    disk_once = await asked(manual.set_boot_device(BootDevice.DISK, once=True))
    assert disk_once.endswith("booting from its local disk once")
    always = await asked(manual.set_boot_device(BootDevice.NETWORK, once=False))
    assert always.startswith("make the network") and "first boot device" in always


async def test_the_power_state_is_never_known() -> None:
    manual = ManualDriver(BmcConfig("manual"))
    assert await manual.query() is PowerState.UNKNOWN
    await manual.close()


async def test_registered_as_manual_without_address_or_options() -> None:
    kind = driver_kind("manual")
    assert (kind.name, kind.needs_address, dict(kind.options)) == ("manual", False, {})
    made = kind.create(BmcConfig("manual", address="rack 4, unit 12"), DriverEnv.strict())
    with pytest.raises(ManualActionRequired) as raised:
        await made.power_on()
    # The note on where the machine is comes with the request.
    assert str(raised.value) == "BMC rack 4, unit 12: power on this machine by hand"
