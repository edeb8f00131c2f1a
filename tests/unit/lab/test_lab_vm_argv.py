"""The lab's QEMU command lines: device ids and serials for the power driver and inventory,
QMP and -no-shutdown on request, extra disks and NICs; existing callers' lines unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebox.lab import vm_specs
from edgebox.lab.vm import VmSpec, disk_path, disk_serial, nic_macs, qemu_argv


def devices(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-device"]


def test_plain_vm_has_ids_and_serial_but_no_qmp(tmp_path: Path) -> None:
    spec = VmSpec("a", "52:54:00:eb:1a:05")
    argv = qemu_argv(spec, "tap-a", tmp_path)
    assert devices(argv) == [
        "virtio-blk-pci,drive=d0,serial=EB525400EB1A05-0,id=disk0,bootindex=2",
        "virtio-net-pci,netdev=n0,mac=52:54:00:eb:1a:05,id=nic0,bootindex=1",
    ]
    assert "-qmp" not in argv and "-no-shutdown" not in argv and "-S" not in argv
    assert disk_path(spec, tmp_path).stat().st_size == 4 << 30
    assert len(disk_serial(VmSpec("a", "ff:ff:ff:ff:ff:ff"), 9)) <= 20  # virtio-blk's limit


def test_qmp_socket_keeps_qemu_alive_after_a_guest_poweroff(tmp_path: Path) -> None:
    spec = VmSpec("a", "52:54:00:eb:1a:05", qmp_socket=tmp_path / "a.qmp", powered_off=True)
    argv = qemu_argv(spec, "tap-a", tmp_path)
    at = argv.index("-qmp")
    assert argv[at + 1] == f"unix:{tmp_path / 'a.qmp'},server=on,wait=off"
    assert "-no-shutdown" in argv and "-S" in argv


@pytest.mark.parametrize("socket", ["/tmp/" + "x" * 110 + ".qmp", "/tmp/a,b.qmp"])
def test_socket_paths_qemu_cannot_use_are_refused(tmp_path: Path, socket: str) -> None:
    with pytest.raises(ValueError, match="QMP socket path"):
        qemu_argv(VmSpec("a", "52:54:00:eb:1a:05", qmp_socket=Path(socket)), "t", tmp_path)


def test_extra_disks_and_nics(tmp_path: Path) -> None:
    spec = VmSpec("b", "52:54:00:eb:1a:07", extra_disks=2, extra_nics=2)
    with pytest.raises(ValueError, match="2 extra NICs but got 1 extra taps"):
        qemu_argv(spec, "tap-b", tmp_path, ["tap1-b"])
    argv = qemu_argv(spec, "tap-b", tmp_path, ["tap1-b", "tap2-b"])
    found = devices(argv)
    # The boot disk and NIC come first and keep their PCI slots; the extras follow, unbootable.
    assert found[0].endswith("id=disk0,bootindex=2") and "id=nic0" in found[1]
    assert found[2:4] == [
        "virtio-blk-pci,drive=d1,serial=EB525400EB1A07-1,id=disk1",
        "virtio-blk-pci,drive=d2,serial=EB525400EB1A07-2,id=disk2",
    ]
    assert found[4:] == [
        "virtio-net-pci,netdev=n1,mac=52:54:01:eb:1a:07,id=nic1,romfile=",
        "virtio-net-pci,netdev=n2,mac=52:54:02:eb:1a:07,id=nic2,romfile=",
    ]
    assert "tap,id=n2,ifname=tap2-b,script=no,downscript=no" in argv
    assert nic_macs(spec) == ["52:54:00:eb:1a:07", "52:54:01:eb:1a:07", "52:54:02:eb:1a:07"]
    for index in (1, 2):
        image = disk_path(spec, tmp_path, index)
        assert image.name == f"b-disk{index}.img"
        assert image.stat().st_size == 4 << 30 and image.stat().st_blocks == 0  # sparse


def test_lab_vms_get_qmp_sockets_in_the_lab_directory(tmp_path: Path) -> None:
    specs = vm_specs(2, tmp_path)
    assert [s.qmp_socket for s in specs] == [tmp_path / "vm0.qmp", tmp_path / "vm1.qmp"]
    assert [s.firmware for s in specs] == ["bios", "uefi"]
    with pytest.raises(ValueError, match="too long"):
        vm_specs(1, tmp_path / ("d" * 120))
