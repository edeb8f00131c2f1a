"""QEMU virtual machines as real PXE clients inside a test lab (LAB.md has the facts).

The command line comes from the product's lab (`edgebox.lab.vm`), so the tests boot VMs the
way `edgebox lab` does. Each VM gets a tap on the lab's bridge and its serial console in a
file; the lab kills it by PID at teardown, and the caller puts a hard timeout on it.
With `qmp_socket` the VM can be powered through QMP (and survives a guest power-off);
`extra_nics` get their own taps on the same bridge.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebox.lab.vm import VmSpec, qemu_argv
from tests.lab import Lab

DISK_MARKER = "EDGEBOX-TEST-DISK-BOOT"


def marker_boot_sector(marker: str = DISK_MARKER) -> bytes:
    """A 512-byte MBR that prints `marker` on the first serial port and halts: the oracle that
    a BIOS VM booted from its disk (write it at offset 0 of the VM's disk image)."""
    text = (marker + "\r\n").encode() + b"\0"
    start = 0x7C00 + 17  # the message follows the 17 bytes of code below
    code = bytes([0xBE, start & 0xFF, start >> 8])  # mov si, message
    code += bytes([0xBA, 0xF8, 0x03])  # mov dx, 0x3f8 (COM1 data port)
    code += bytes([0xAC, 0x08, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8])  # lodsb; or al,al; jz; out
    code += bytes([0xF4, 0xEB, 0xFD])  # hlt; jmp back to hlt
    sector = code + text
    return sector + bytes(510 - len(sector)) + b"\x55\xaa"


@dataclass
class Vm:
    proc: subprocess.Popen[Any]
    console: Path
    mac: str
    qmp_socket: Path | None = None

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
    qmp_socket: Path | None = None,  # QMP there, and -no-shutdown
    powered_off: bool = False,  # -S: wait for a power-on through QMP
    extra_disks: int = 0,
    extra_nics: int = 0,
) -> Vm:
    tap = f"tap-{name}"[:15]
    lab.tap(ns, tap, bridge=bridge)
    extra_taps = [f"tap{k}-{name}"[:15] for k in range(1, extra_nics + 1)]
    for extra_tap in extra_taps:
        lab.tap(ns, extra_tap, bridge=bridge)
    console = lab.tmpdir / f"{name}.console"
    spec = VmSpec(
        name, mac, firmware=firmware, nic=nic, native_pxe=not ipxe_rom, memory_mib=256,
        qmp_socket=qmp_socket, powered_off=powered_off, extra_disks=extra_disks,
        extra_nics=extra_nics,
    )  # fmt: skip
    out = console.open("wb")
    try:
        argv = qemu_argv(spec, tap, lab.tmpdir, extra_taps)
        proc = lab.run(ns, argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        out.close()
    return Vm(proc, console, mac, qmp_socket)
