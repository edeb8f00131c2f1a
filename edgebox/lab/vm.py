"""Lab machines: QEMU VMs that network-boot like real servers (LAB.md has the facts).

TCG only: /dev/kvm here is nested PVM, under which stock kernels and the iPXE ROM hang, so
the accelerator is never chosen by the device existing. BIOS VMs use QEMU's NIC ROM (which is
iPXE); UEFI VMs use OVMF, with its own PXE and HTTP boot when `native_pxe` is set (romfile=
empty), the faithful "vendor firmware" case. Each VM has a disk (booted second) and a serial
console captured to a file.

Power: with a `qmp_socket`, QEMU serves its machine protocol there and runs with
`-no-shutdown`, so a guest that powers off stays in QEMU's "shutdown" state instead of
exiting, and the lab power driver (edgebox.drivers.power.lab_qmp) can switch it on again.
That driver finds the boot NIC and disk by their device ids, NIC_ID and DISK_ID; with
`powered_off` the VM starts switched off (QEMU's -S) and waits for it.

Hardware for inventories: every disk carries a serial number (`disk_serial`), and
`extra_disks` / `extra_nics` add more of each. Extra disks are sparse files with no boot
index; extra NICs each need their own tap, have MACs derived from the VM's (`nic_macs`) and no
boot ROM, so only the first NIC network-boots, as on most servers.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
NIC_ID = "nic0"
DISK_ID = "disk0"
# sockaddr_un holds 108 bytes with the terminating NUL; QEMU refuses longer paths.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True, slots=True)
class VmSpec:
    name: str
    mac: str
    firmware: str = "bios"  # bios | uefi
    nic: str = "virtio-net-pci"  # or e1000
    native_pxe: bool = False  # UEFI only: OVMF's own PXE/HTTP clients instead of iPXE
    memory_mib: int = 512
    cpus: int = 1
    disk_gib: int = 4
    qmp_socket: Path | None = None  # QMP here, and -no-shutdown: the lab power driver's address
    powered_off: bool = False  # start with the CPU stopped (-S) until powered on through QMP
    extra_disks: int = 0  # more sparse virtio-blk disks of disk_gib each, not bootable
    extra_nics: int = 0  # more NICs, each on one of qemu_argv's extra_taps, not bootable


def nic_macs(spec: VmSpec) -> list[str]:
    """The MAC of each NIC: the spec's, then for extra NIC k the same with its third octet k
    (52:54:00:eb:1a:02 → 52:54:01:eb:1a:02), so they stay unique across the lab's VMs."""
    octets = spec.mac.split(":")
    return [spec.mac] + [
        ":".join([*octets[:2], f"{k:02x}", *octets[3:]]) for k in range(1, spec.extra_nics + 1)
    ]


def disk_serial(spec: VmSpec, index: int) -> str:
    """Disk `index`'s serial (0: the boot disk): unique per VM through its MAC, and within the
    20 bytes a virtio-blk serial holds."""
    return f"EB{spec.mac.replace(':', '').upper()}-{index}"


def disk_path(spec: VmSpec, workdir: Path, index: int = 0) -> Path:
    return workdir / (f"{spec.name}.img" if index == 0 else f"{spec.name}-disk{index}.img")


def qemu_argv(spec: VmSpec, tap: str, workdir: Path, extra_taps: Sequence[str] = ()) -> list[str]:
    """QEMU's command line; creates the VM's disks (sparse) and UEFI variables if missing."""
    if len(extra_taps) != spec.extra_nics:
        raise ValueError(
            f"VM {spec.name} has {spec.extra_nics} extra NICs but got {len(extra_taps)} extra taps"
        )
    argv = [
        "qemu-system-x86_64", "-name", spec.name,
        "-machine", "q35,accel=tcg", "-cpu", "max",
        "-m", str(spec.memory_mib), "-smp", str(spec.cpus),
        "-nographic", "-monitor", "none",
        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
        *_disk_args(spec, workdir, 0),
    ]  # fmt: skip
    nic = f"{spec.nic},netdev=n0,mac={spec.mac},id={NIC_ID},bootindex=1"
    if spec.firmware == "uefi":
        argv += _uefi_args(spec, workdir)
        if spec.native_pxe:
            nic += ",romfile="
    argv += ["-device", nic]
    # Extras after the first NIC, so the boot disk and NIC keep their PCI addresses.
    for index in range(1, spec.extra_disks + 1):
        argv += _disk_args(spec, workdir, index)
    for k, (extra_tap, mac) in enumerate(zip(extra_taps, nic_macs(spec)[1:], strict=True), 1):
        argv += [
            "-netdev", f"tap,id=n{k},ifname={extra_tap},script=no,downscript=no",
            "-device", f"{spec.nic},netdev=n{k},mac={mac},id=nic{k},romfile=",
        ]  # fmt: skip
    if spec.qmp_socket is not None:
        argv += _qmp_args(spec.qmp_socket)
    if spec.powered_off:
        argv.append("-S")
    return argv


def _disk_args(spec: VmSpec, workdir: Path, index: int) -> list[str]:
    disk = disk_path(spec, workdir, index)
    if not disk.exists():
        with disk.open("wb") as f:
            f.truncate(spec.disk_gib << 30)  # sparse
    # The boot disk keeps the drive id d0 the lab has always used; bootindex is refused on
    # -drive if=virtio, hence the separate -device.
    device = f"virtio-blk-pci,drive=d{index},serial={disk_serial(spec, index)}"
    device += f",id={DISK_ID},bootindex=2" if index == 0 else f",id=disk{index}"
    return ["-drive", f"file={disk},if=none,id=d{index},format=raw", "-device", device]


def _uefi_args(spec: VmSpec, workdir: Path) -> list[str]:
    vars_copy = workdir / f"{spec.name}-vars.fd"
    if not vars_copy.exists():
        shutil.copyfile(OVMF_VARS, vars_copy)
    return [
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
        "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n",
    ]  # fmt: skip


def check_socket_path(socket: Path) -> None:
    """Raise ValueError for a path QEMU cannot listen on (checked before anything starts)."""
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise ValueError(f"QMP socket path too long for a unix socket (choose a shorter data"
                         f" directory): {socket}")  # fmt: skip
    if "," in str(socket):
        raise ValueError(f"QMP socket path with a comma (QEMU's option separator): {socket}")


def _qmp_args(socket: Path) -> list[str]:
    check_socket_path(socket)
    return ["-qmp", f"unix:{socket},server=on,wait=off", "-no-shutdown"]
