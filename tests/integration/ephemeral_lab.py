"""The ephemeral environment in a lab: its build, a stand-in machine API, DHCP, and a VM.

The VM boots the built kernel and initramfs directly (`-kernel`/`-initrd`/`-append`: no
firmware PXE needed to test what runs after it), on a tap in the lab's client bridge; dnsmasq
in the server namespace gives it an address and `ephemeral_api.py` there plays the machine API.
TCG only (LAB.md: KVM here is nested PVM and hangs stock kernels).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebox.lab.vm import OVMF_CODE, OVMF_VARS
from tests.lab import Lab, TwoHosts

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "packaging" / "ephemeral" / "build"
API_SCRIPT = Path(__file__).with_name("ephemeral_api.py")
DHCP_RANGE = ("10.231.0.100", "10.231.0.150")
MARKER = re.compile(r"EDGEBOX: (.*)")


@dataclass(frozen=True)
class Ephemeral:
    """A finished build: its directory and manifest."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.gz"


def build_ephemeral(timeout: float = 900) -> Ephemeral:
    """Run packaging/ephemeral/build (a cache hit takes seconds) and load its manifest."""
    out = subprocess.run(
        [sys.executable, str(BUILD)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"ephemeral build failed ({out.returncode}):\n{out.stderr}")
    directory = Path(out.stdout.strip().splitlines()[-1])
    return Ephemeral(directory, json.loads((directory / "manifest.json").read_text()))


@dataclass
class MachineApi:
    """The stand-in machine API running in the lab, and the requests it recorded."""

    url: str
    proc: subprocess.Popen[str]
    record: Path
    uploads: Path | None = None  # where results' stdout, stderr and result files land

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def uploaded(self, result_id: str, what: str) -> bytes | None:
        """The body of the last stdout|stderr|result upload of a result, None if none came."""
        assert self.uploads is not None
        path = self.uploads / f"{result_id}.{what}"
        return path.read_bytes() if path.exists() else None


@dataclass(frozen=True)
class Plan:
    """Scripts for the stand-in to hand out (--plan) and a directory for their uploads."""

    file: Path  # JSON: [{"id", "parallel", "timeout", "name", "script", "env"}, ...]
    uploads: Path
    running_action: str = "continue"  # the heartbeat answer while scripts run


def api_argv(
    host: str, port: int, token: str, actions: list[str], record: Path, plan: Plan | None = None
) -> list[str]:
    argv = [
        sys.executable, str(API_SCRIPT), "--host", host, "--port", str(port),
        "--token", token, "--record", str(record), "--actions", ",".join(actions),
    ]  # fmt: skip
    if plan is not None:
        argv += ["--plan", str(plan.file), "--uploads", str(plan.uploads)]
        argv += ["--running-action", plan.running_action]
    return argv


def api_started(
    proc: subprocess.Popen[str], host: str, record: Path, plan: Plan | None = None
) -> MachineApi:
    """Wait for the stand-in's "listening PORT" line."""
    assert proc.stdout is not None
    words = proc.stdout.readline().split()
    if len(words) != 2 or words[0] != "listening":
        raise RuntimeError(f"the stand-in API did not start: {proc.poll()=}")
    return MachineApi(f"http://{host}:{words[1]}", proc, record, plan.uploads if plan else None)


def start_api(
    lab: Lab,
    net: TwoHosts,
    port: int,
    token: str,
    actions: list[str],
    name: str,
    plan: Plan | None = None,
    extra_args: Sequence[str] = (),
) -> MachineApi:
    """The stand-in API in the lab's server namespace (`extra_args`: more of its options)."""
    record = lab.tmpdir / f"{name}-api.jsonl"
    argv = [*api_argv(net.server_ip, port, token, actions, record, plan), *extra_args]
    log = (lab.tmpdir / f"{name}-api.log").open("w")
    try:
        proc = lab.run(net.server_ns, argv, stdout=subprocess.PIPE, stderr=log, text=True)
    finally:
        log.close()
    return api_started(proc, net.server_ip, record, plan)


def start_dnsmasq(lab: Lab, net: TwoHosts) -> Path:
    """DHCP for the VMs on the lab's link; returns dnsmasq's log file."""
    workdir = lab.tmpdir / "dnsmasq"
    workdir.mkdir(exist_ok=True)
    log = workdir / "dnsmasq.log"
    argv = [
        "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--port=0",
        f"--interface={net.server_if}", "--bind-interfaces",
        f"--dhcp-range={DHCP_RANGE[0]},{DHCP_RANGE[1]},255.255.255.0,10m",
        f"--dhcp-option=option:router,{net.server_ip}",
        f"--dhcp-leasefile={workdir / 'leases'}", "--no-ping", "--log-dhcp",
        f"--log-facility={log}", f"--pid-file={workdir / 'dnsmasq.pid'}",
    ]  # fmt: skip
    proc = lab.run(net.server_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while "sockets bound" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dnsmasq did not start: {log.read_text() if log.exists() else ''}")
        time.sleep(0.05)
    return log


@dataclass(frozen=True)
class VmSpec:
    """What the test VM looks like, so the test can compare the inventory with it."""

    name: str
    mac: str
    nic: str = "virtio-net-pci"  # or e1000
    memory_mib: int = 512
    cpus: int = 2
    disk_bytes: int = 2 << 30
    disk_serial: str = "EBDISK0001"
    vendor: str = "EdgeboxLab"
    product: str = "EphemeralTest"
    serial: str = "EB-SERIAL-0001"
    uuid: str = "6e0c5d8a-3f7b-4c1e-9a2d-0b1c2d3e4f50"
    # More hardware, for the inventory: (QEMU device: virtio-blk-pci|nvme, bytes, serial)
    # disks after the first, (QEMU device, MAC) NICs after the boot one (each on its own tap in
    # the same bridge), and an IPMI BMC (QEMU's simulated BMC on a KCS interface: SMBIOS
    # type 38).
    extra_disks: tuple[tuple[str, int, str], ...] = ()
    extra_nics: tuple[tuple[str, str], ...] = ()
    bmc: bool = False
    uefi: bool = False  # OVMF (a copy of its variable store per VM) instead of SeaBIOS


@dataclass
class Vm:
    spec: VmSpec
    proc: subprocess.Popen[Any]
    console: Path

    def output(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def markers(self) -> list[str]:
        """The "EDGEBOX: ..." marker lines of the console, in order, without the prefix."""
        return [m.group(1).strip() for m in map(MARKER.search, self.output().splitlines()) if m]


def boot_vm(
    lab: Lab, net: TwoHosts, spec: VmSpec, ephemeral: Ephemeral, append: str, logdir: Path
) -> Vm:
    """Start QEMU in the client namespace; the lab kills it at teardown. Its serial console
    and QEMU's own messages go to `logdir` (which outlives the lab, for a failing test)."""
    assert net.bridge is not None
    tap = f"tap-{spec.name}"[:15]
    lab.tap(net.client_ns, tap, bridge=net.bridge)
    disk = lab.tmpdir / f"{spec.name}.img"
    if not disk.exists():  # a test may have put content there for the VM to find
        with disk.open("wb") as f:
            os.truncate(f.fileno(), spec.disk_bytes)  # sparse: costs no space
    console = logdir / f"{spec.name}.console"
    smbios = (
        f"type=1,manufacturer={spec.vendor},product={spec.product},serial={spec.serial},"
        f"uuid={spec.uuid}"
    )
    argv = [
        "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max",
        "-m", str(spec.memory_mib), "-smp", f"{spec.cpus},sockets=1,cores={spec.cpus},threads=1",
        "-nographic", "-monitor", "none", "-serial", f"file:{console}", "-no-reboot",
        "-kernel", str(ephemeral.kernel), "-initrd", str(ephemeral.initrd), "-append", append,
        "-smbios", smbios,
        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
        # romfile=: no iPXE ROM, the kernel is already loaded.
        "-device", f"{spec.nic},netdev=n0,mac={spec.mac},romfile=",
        "-drive", f"file={disk},if=none,id=d0,format=raw",
        "-device", f"virtio-blk-pci,drive=d0,serial={spec.disk_serial}",
    ]  # fmt: skip
    for i, (device, size, serial) in enumerate(spec.extra_disks, start=1):
        extra = lab.tmpdir / f"{spec.name}-{i}.img"
        if not extra.exists():
            with extra.open("wb") as f:
                os.truncate(f.fileno(), size)
        argv += ["-drive", f"file={extra},if=none,id=d{i},format=raw"]
        argv += ["-device", f"{device},drive=d{i},serial={serial}"]
    for i, (device, mac) in enumerate(spec.extra_nics, start=1):
        extra_tap = f"tap{i}-{spec.name}"[:15]
        lab.tap(net.client_ns, extra_tap, bridge=net.bridge)
        argv += ["-netdev", f"tap,id=n{i},ifname={extra_tap},script=no,downscript=no"]
        argv += ["-device", f"{device},netdev=n{i},mac={mac},romfile="]
    if spec.bmc:
        argv += ["-device", "ipmi-bmc-sim,id=bmc0", "-device", "isa-ipmi-kcs,bmc=bmc0"]
    if spec.uefi:
        variables = lab.tmpdir / f"{spec.name}-vars.fd"
        shutil.copyfile(OVMF_VARS, variables)
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
        ]  # fmt: skip
    log = (logdir / f"{spec.name}.qemu.log").open("w")
    try:
        proc = lab.run(net.client_ns, argv, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
    return Vm(spec, proc, console)
