"""QEMU virtual machines as real PXE clients inside a lab namespace (LAB.md has the facts).

TCG only (never KVM here: /dev/kvm is nested PVM and stock firmware hangs under it). Each VM
gets a tap on the lab's bridge, its serial console captured to a file, and a hard timeout by
the caller; the lab kills it by PID at teardown.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab import Lab

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


@dataclass
class Vm:
    proc: subprocess.Popen[Any]
    console: Path
    mac: str

    def output(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""


def start_vm(
    lab: Lab,
    ns: str,
    bridge: str,
    name: str,
    mac: str,
    firmware: str = "bios",  # bios | uefi
    ipxe_rom: bool = True,  # False: the firmware's own PXE/HTTP clients (UEFI only)
    nic: str = "virtio-net-pci",
) -> Vm:
    tap = f"tap-{name}"[:15]
    lab.tap(ns, tap, bridge=bridge)
    console = lab.tmpdir / f"{name}.console"
    argv = [
        "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "256",
        "-smp", "1", "-nographic", "-monitor", "none", "-no-reboot",
        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
    ]  # fmt: skip
    device = f"{nic},netdev=n0,mac={mac},bootindex=1"
    if not ipxe_rom:
        device += ",romfile="
    argv += ["-device", device]
    if firmware == "uefi":
        vars_copy = lab.tmpdir / f"{name}-vars.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n",
        ]  # fmt: skip
    out = console.open("wb")
    try:
        proc = lab.run(ns, argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        out.close()
    return Vm(proc, console, mac)
