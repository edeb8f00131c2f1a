"""The lab power driver against real QEMU: a VM started switched off (-S) is powered on through
QMP and network-boots (its iPXE ROM starts and tries DHCP), a hard off freezes it, the next
power on boots it afresh, and a boot device chosen through the driver decides the next boot
(an MBR that prints a marker proves the disk booted). No DHCP server is needed: the ROM
starting and sending DHCP is the network-boot oracle. TCG only; the lab kills QEMU by PID and
removes the namespace even when the test fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import BmcConfig, RetryablePowerError
from edgebox.drivers.power.lab_qmp import LabQmpDriver
from edgebox.drivers.qmp import QmpClient
from edgebox.lab.vm import VmSpec, disk_path, disk_serial, nic_macs
from tests.integration.qemu_vm import DISK_MARKER, Vm, marker_boot_sector, start_vm
from tests.lab import Lab, skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

MAC = "52:54:00:e7:00:01"
FIRMWARE_START = "SeaBIOS (version"
NETWORK_BOOT = "Booting from ROM..."  # SeaBIOS handing over to the NIC's iPXE ROM
DHCP_ATTEMPT = f"Configuring (net0 {MAC})"  # iPXE starting DHCP on the NIC
DISK_BOOT = "Booting from Hard Disk"  # the MBR may print before SeaBIOS's dots
VM_TIMEOUT = 150.0  # the whole life of the VM, hard


async def wait_for(vm: Vm, pattern: str, count: int = 1, within: float = 60) -> str:
    """Wait until `pattern` occurs `count` times on the console; return the console."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        text = vm.output()
        if text.count(pattern) >= count:
            return text
        assert vm.proc.poll() is None, f"QEMU exited {vm.proc.returncode}:\n{text[-2000:]}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"{pattern!r} x{count} not on the console in {within}s:\n"
                         f"{vm.output()[-3000:]}")  # fmt: skip


def since_last(text: str, marker: str) -> str:
    return text[text.rindex(marker) :]


async def console_grows(vm: Vm, within: float) -> bool:
    before = len(vm.output())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        await asyncio.sleep(0.25)
        if len(vm.output()) > before:
            return True
    return False


def start(lab: Lab, name: str, extra_disks: int = 0, extra_nics: int = 0) -> tuple[Vm, Path]:
    """A switched-off VM (-S) with QMP, on a bridge in a namespace of its own; waits until
    QEMU listens on the QMP socket."""
    ns = lab.netns("vms")
    lab.bridge(ns, "br0")
    socket = lab.tmpdir / f"{name}.qmp"
    vm = start_vm(lab, ns, "br0", name, MAC, qmp_socket=socket, powered_off=True,
                  extra_disks=extra_disks, extra_nics=extra_nics)  # fmt: skip
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert vm.proc.poll() is None, f"QEMU exited:\n{vm.output()[-2000:]}"
        assert time.monotonic() < deadline, f"QEMU did not create {socket}"
        time.sleep(0.05)
    return vm, socket


async def test_lab_driver_powers_and_boots_a_real_vm() -> None:
    skip_unless_lab("qemu-system-x86_64")
    with Lab() as lab:
        name = "pwr"
        disk = disk_path(VmSpec(name, MAC), lab.tmpdir)
        with disk.open("wb") as f:  # the disk boots to a marker, so a disk boot is visible
            f.write(marker_boot_sector())
            f.truncate(4 << 30)
        vm, socket = start(lab, name)
        async with asyncio.timeout(VM_TIMEOUT):
            lab_bmc = LabQmpDriver(BmcConfig("lab", str(socket)))

            # Started with -S: switched off, nothing on the console yet.
            assert await lab_bmc.query() is PowerState.OFF
            await asyncio.sleep(1)
            assert FIRMWARE_START not in vm.output()

            # 1. Network boot: the iPXE ROM starts and tries DHCP.
            await lab_bmc.set_boot_device(BootDevice.NETWORK)
            await lab_bmc.power_on()
            text = await wait_for(vm, DHCP_ATTEMPT)
            assert await lab_bmc.query() is PowerState.ON
            assert NETWORK_BOOT in text and DISK_BOOT not in text
            assert await console_grows(vm, 15), "iPXE should keep printing DHCP progress"

            # 2. Hard off: QEMU stays, the guest is frozen and prints nothing more.
            await lab_bmc.power_off()
            assert await lab_bmc.query() is PowerState.OFF
            assert not await console_grows(vm, 4)
            assert vm.proc.poll() is None

            # 3. Disk first, power on: a fresh boot (firmware again) from the disk.
            await lab_bmc.set_boot_device(BootDevice.DISK)
            await lab_bmc.power_on()
            text = await wait_for(vm, DISK_MARKER)
            assert text.count(FIRMWARE_START) == 2
            second = since_last(text, FIRMWARE_START)
            assert DISK_BOOT in second and NETWORK_BOOT not in second
            assert await lab_bmc.query() is PowerState.ON

            # 4. Network first again, power cycle: a third boot, from the network.
            await lab_bmc.set_boot_device(BootDevice.NETWORK)
            await lab_bmc.power_cycle()
            text = await wait_for(vm, DHCP_ATTEMPT, count=2)
            third = since_last(text, FIRMWARE_START)
            assert text.count(FIRMWARE_START) == 3
            assert NETWORK_BOOT in third and DISK_MARKER not in third

            # 5. QEMU gone: the driver says retry, naming the socket.
            lab.stop(vm.proc)
            with pytest.raises(RetryablePowerError) as raised:
                await lab_bmc.query()
            assert str(socket) in str(raised.value)


async def test_extra_disks_and_nics_with_serials() -> None:
    skip_unless_lab("qemu-system-x86_64")
    with Lab() as lab:
        name = "hw"
        _vm, socket = start(lab, name, extra_disks=2, extra_nics=1)
        spec = VmSpec(name, MAC, extra_disks=2, extra_nics=1)
        async with asyncio.timeout(60):
            async with await QmpClient.connect(socket) as qmp:
                devices = {
                    d["name"]
                    for d in await qmp.execute("qom-list", {"path": "/machine/peripheral"})
                }
                assert {"nic0", "nic1", "disk0", "disk1", "disk2"} <= devices

                async def prop(device: str, name: str) -> object:
                    path = f"/machine/peripheral/{device}"
                    return await qmp.execute("qom-get", {"path": path, "property": name})

                serials = [await prop(f"disk{i}", "serial") for i in range(3)]
                assert serials == [disk_serial(spec, i) for i in range(3)]
                assert len(set(serials)) == 3
                assert [await prop(f"disk{i}", "bootindex") for i in range(3)] == [2, -1, -1]
                macs = [await prop(f"nic{i}", "mac") for i in range(2)]
                assert macs == nic_macs(spec) and macs[1] == "52:54:01:e7:00:01"
                assert await prop("nic0", "bootindex") == 1
        assert (lab.tmpdir / "hw-disk2.img").stat().st_blocks == 0  # sparse
