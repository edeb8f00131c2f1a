"""The lab power driver against a fake QEMU that keeps QEMU's run-state and bootindex rules."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fake_qmp import FakeQemu, FakeVm

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import BmcConfig, DriverEnv, FatalPowerError, RetryablePowerError
from edgebox.drivers.power.lab_qmp import LabQmpDriver
from edgebox.drivers.power.registry import driver_kind


def driver(path: Path, **options: str | int | bool) -> LabQmpDriver:
    return LabQmpDriver(BmcConfig("lab", str(path), options={"timeout": 1, **options}))


def sent(qemu: FakeQemu) -> list[str]:
    """The commands after negotiation, by name."""
    return [name for name, _ in qemu.commands if name != "qmp_capabilities"]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("running", PowerState.ON),
        ("prelaunch", PowerState.OFF),
        ("paused", PowerState.OFF),
        ("shutdown", PowerState.OFF),
        ("guest-panicked", PowerState.OFF),
    ],
)
async def test_query_maps_qemu_run_states(sock_dir: Path, status: str, state: PowerState) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status=status)):
        assert await driver(sock_dir / "qmp").query() is state


@pytest.mark.parametrize("status", ["prelaunch", "paused", "shutdown"])
async def test_power_on_resets_then_continues(sock_dir: Path, status: str) -> None:
    # Even prelaunch (-S) is reset: QEMU reads the boot order at reset.
    async with FakeQemu(sock_dir / "qmp", FakeVm(status=status)) as qemu:
        await driver(sock_dir / "qmp").power_on()
        assert sent(qemu) == ["query-status", "system_reset", "cont"]
        assert qemu.vm.status == "running"


async def test_power_on_leaves_a_running_vm_alone(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        await driver(sock_dir / "qmp").power_on()
        assert sent(qemu) == ["query-status"]
        assert qemu.vm.resets == 0


async def test_power_on_waits_for_the_reset_to_land(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="shutdown")) as qemu:
        qemu.reset_event = False  # QEMU never reports the reset
        with pytest.raises(RetryablePowerError, match="no answer within 1s"):
            await driver(sock_dir / "qmp").power_on()
        assert "cont" not in sent(qemu)


async def test_hard_off_freezes_and_the_next_on_boots_fresh(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        lab = driver(sock_dir / "qmp")
        await lab.power_off()
        assert sent(qemu) == ["query-status", "stop"]
        assert await lab.query() is PowerState.OFF
        await lab.power_on()
        assert qemu.vm.resets == 1
        assert await lab.query() is PowerState.ON


async def test_soft_off_presses_the_acpi_button_and_off_vms_are_left_alone(
    sock_dir: Path,
) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        lab = driver(sock_dir / "qmp")
        await lab.power_off(soft=True)
        assert qemu.vm.powerdowns == 1
        assert qemu.vm.status == "running"  # the guest decides
        qemu.vm.status = "shutdown"
        qemu.commands.clear()
        await lab.power_off(soft=True)
        await lab.power_off()
        assert sent(qemu) == ["query-status", "query-status"]


async def test_power_cycle_resets_a_running_vm_and_starts_an_off_one(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        lab = driver(sock_dir / "qmp")
        await lab.power_cycle()
        assert sent(qemu) == ["query-status", "system_reset"]
        assert (qemu.vm.status, qemu.vm.resets) == ("running", 1)
        qemu.vm.status = "paused"
        qemu.commands.clear()
        await lab.power_cycle()
        assert sent(qemu) == ["query-status", "system_reset", "cont"]
        assert qemu.vm.status == "running"


async def test_boot_device_swaps_bootindex_and_takes_effect_at_the_next_reset(
    sock_dir: Path,
) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="prelaunch")) as qemu:
        lab = driver(sock_dir / "qmp")
        await lab.set_boot_device(BootDevice.DISK)
        assert qemu.vm.bootindex == {"disk0": 1, "nic0": 2}
        await lab.power_on()
        await lab.set_boot_device(BootDevice.NETWORK, once=False)
        await lab.power_cycle()
        assert qemu.vm.boot_order_at_reset == [["disk0", "nic0"], ["nic0", "disk0"]]


async def test_boot_device_already_first_changes_nothing(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp") as qemu:
        await driver(sock_dir / "qmp").set_boot_device(BootDevice.NETWORK)
        assert "qom-set" not in sent(qemu)


async def test_boot_device_keeps_the_vms_own_index_values(sock_dir: Path) -> None:
    vm = FakeVm(bootindex={"eth": 3, "root": 7, "cd": 5})
    async with FakeQemu(sock_dir / "qmp", vm):
        await driver(sock_dir / "qmp", nic_id="eth", disk_id="root").set_boot_device(
            BootDevice.DISK
        )
    assert vm.bootindex == {"eth": 7, "root": 3, "cd": 5}


async def test_once_is_not_emulated_the_order_stays(sock_dir: Path) -> None:
    # The module docstring says why: the boot script decides what a network boot does.
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        lab = driver(sock_dir / "qmp")
        await lab.set_boot_device(BootDevice.DISK, once=True)
        await lab.power_cycle()
        await lab.power_cycle()
        assert qemu.vm.boot_order_at_reset == [["disk0", "nic0"], ["disk0", "nic0"]]


async def test_a_vm_without_device_ids_is_a_fatal_error_that_says_so(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(bootindex={"net0": 1, "d0": 2})):
        with pytest.raises(FatalPowerError, match="id=disk0") as raised:
            await driver(sock_dir / "qmp").set_boot_device(BootDevice.DISK)
    assert "Device '/machine/peripheral/disk0' not found" in str(raised.value)
    assert raised.value.address == str(sock_dir / "qmp")


async def test_a_refused_command_is_fatal_with_qemus_description(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        qemu.refuse["stop"] = "Migration is not supported"
        with pytest.raises(FatalPowerError) as raised:
            await driver(sock_dir / "qmp").power_off()
    assert raised.value.fatal
    assert "QEMU refused stop: Migration is not supported" in str(raised.value)


async def test_a_missing_socket_is_retryable_and_names_the_path(sock_dir: Path) -> None:
    path = sock_dir / "vm7.qmp"
    with pytest.raises(RetryablePowerError) as raised:
        await driver(path).query()
    assert not raised.value.fatal
    assert str(path) in str(raised.value) and "VM not running?" in str(raised.value)


async def test_a_socket_nobody_listens_on_is_retryable(sock_dir: Path) -> None:
    path = sock_dir / "stale.qmp"
    with socket.socket(socket.AF_UNIX) as stale:  # what a killed QEMU leaves behind
        stale.bind(str(path))
        with pytest.raises(RetryablePowerError, match="refused"):
            await driver(path).power_on()


async def test_a_silent_qemu_is_retryable(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp") as qemu:
        qemu.silent = True
        with pytest.raises(RetryablePowerError, match="no answer"):
            await driver(sock_dir / "qmp").query()


async def test_registered_as_lab_with_checked_options(sock_dir: Path) -> None:
    kind = driver_kind("lab")
    assert kind.needs_address
    made = kind.create(BmcConfig("lab", str(sock_dir / "qmp")), DriverEnv.strict())
    assert isinstance(made, LabQmpDriver)
    assert (made.nic_id, made.disk_id, made.timeout) == ("nic0", "disk0", 10.0)
    with pytest.raises(FatalPowerError, match="unknown option 'port'"):
        kind.create(BmcConfig("lab", "/x.qmp", options={"port": 1}), DriverEnv.strict())
    with pytest.raises(FatalPowerError, match="QMP socket path"):
        await kind.create(BmcConfig("lab"), DriverEnv.strict()).query()
