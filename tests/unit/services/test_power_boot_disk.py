"""The power queue's `boot-disk` operation (after a deploy: boot what was written, for good),
through the real PowerService with an in-memory BMC."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgebox.domain.power import BootDevice, PowerOp, PowerOpState, PowerState
from edgebox.services.machine_service import MachineService
from edgebox.storage.database import Database
from edgebox.storage.machine_store import MachineStore
from tests.conftest import FakeClock
from tests.unit.services.test_power_service import Lab, make_power, running


async def test_boot_disk_sets_the_disk_first_for_good_and_leaves_the_power(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    lab = Lab()
    power = make_power(db, clock, lab, tmp_path)
    machines = MachineService(MachineStore(db))
    machine = await machines.create(["52:54:00:aa:00:01"], "test")
    await power.set_bmc(machine.system_id, "test", driver="fake", address="10.0.0.9",
                        password="pw")  # fmt: skip
    async with running(power):
        op = await power.request(machine.system_id, PowerOp.BOOT_DISK, "deploy", system=True)
        for _ in range(500):
            [op] = await power.ops([op.id])
            if op.state is PowerOpState.DONE:
                break
            await asyncio.sleep(0.01)
    assert op.state is PowerOpState.DONE
    bmc = lab.bmcs["10.0.0.9"]
    assert bmc.boot == [(BootDevice.DISK, False)] and "on" not in bmc.calls
    assert (await machines.get(machine.system_id)).power_state is PowerState.UNKNOWN
