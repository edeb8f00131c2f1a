"""Lab machines: QEMU VMs that network-boot like real servers (LAB.md has the facts).

TCG only: /dev/kvm here is nested PVM, under which stock kernels and the iPXE ROM hang, so
the accelerator is never chosen by the device existing. BIOS VMs use QEMU's NIC ROM (which is
iPXE); UEFI VMs use OVMF, with its own PXE and HTTP boot when `native_pxe` is set (romfile=
empty), the faithful "vendor firmware" case. Each VM has a disk (booted second) and a serial
console captured to a file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


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


def qemu_argv(spec: VmSpec, tap: str, workdir: Path) -> list[str]:
    disk = workdir / f"{spec.name}.img"
    if not disk.exists():
        with disk.open("wb") as f:
            f.truncate(spec.disk_gib << 30)  # sparse
    argv = [
        "qemu-system-x86_64", "-name", spec.name,
        "-machine", "q35,accel=tcg", "-cpu", "max",
        "-m", str(spec.memory_mib), "-smp", str(spec.cpus),
        "-nographic", "-monitor", "none",
        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
        "-drive", f"file={disk},if=none,id=d0,format=raw",
        "-device", "virtio-blk-pci,drive=d0,bootindex=2",
    ]  # fmt: skip
    nic = f"{spec.nic},netdev=n0,mac={spec.mac},bootindex=1"
    if spec.firmware == "uefi":
        vars_copy = workdir / f"{spec.name}-vars.fd"
        if not vars_copy.exists():
            shutil.copyfile(OVMF_VARS, vars_copy)
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n",
        ]  # fmt: skip
        if spec.native_pxe:
            nic += ",romfile="
    return [*argv, "-device", nic]
