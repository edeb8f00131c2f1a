"""QEMU virtual machines as real PXE clients inside a test lab (LAB.md has the facts).

The command line comes from the product's lab (`edgebox.lab.vm`), so the tests boot VMs the
way `edgebox lab` does. Each VM gets a tap on the lab's bridge and its serial console in a
file; the lab kills it by PID at teardown, and the caller puts a hard timeout on it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebox.lab.vm import VmSpec, qemu_argv
from tests.lab import Lab


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
    spec = VmSpec(name, mac, firmware=firmware, nic=nic, native_pxe=not ipxe_rom, memory_mib=256)
    out = console.open("wb")
    try:
        argv = qemu_argv(spec, tap, lab.tmpdir)
        proc = lab.run(ns, argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        out.close()
    return Vm(proc, console, mac)
