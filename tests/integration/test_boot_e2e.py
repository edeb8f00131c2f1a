"""The whole boot path with real firmware: an unknown VM PXE-boots from edgebox (DHCP, TFTP,
HTTP), runs the ephemeral environment, and is enlisted with an inventory that matches the VM,
for (a) BIOS + iPXE ROM, (b) UEFI + iPXE ROM, (c) OVMF's own PXE loading snponly.efi over
TFTP, (d) OVMF's UEFI HTTP boot; and a Deployed machine falls through to its local disk."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgebox.lab.topology import SERVER_IF, SERVER_IP, SUBNET, Topology
from edgebox.lab.vm import VmSpec, qemu_argv
from tests.integration.daemon import Daemon, free_port, running
from tests.lab import skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DISK_MARKER = "EDGEBOX-LOCAL-DISK"


def _boot_sector() -> bytes:
    """A 512-byte MBR that writes DISK_MARKER to the first serial port and halts: the oracle
    that the machine booted from its local disk."""
    msg_at = 0x7C11
    code = bytes([0xBE, msg_at & 0xFF, msg_at >> 8])  # mov si, msg
    code += bytes([0xBA, 0xF8, 0x03])  # mov dx, 0x3f8 (COM1)
    code += bytes([0xAC, 0x08, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8])  # lodsb/or/jz/out/jmp
    code += bytes([0xF4, 0xEB, 0xFD])  # hlt; jmp hlt
    code += (DISK_MARKER + "\r\n").encode() + b"\0"
    return code + bytes(510 - len(code)) + b"\x55\xaa"


@pytest.fixture(scope="module")
def boot_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("bootfiles")
    loaders = work / "loaders"
    subprocess.run([str(ROOT / "scripts" / "fetch-loaders"), str(loaders)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    built = subprocess.run(
        [str(ROOT / "packaging" / "ephemeral" / "build")],
        check=True, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return loaders, Path(built.stdout.strip().splitlines()[-1])


@contextmanager
def boot_server(work: Path, loaders: Path, ephemeral: Path, tftp_root: Path | None = None,
                more_config: dict[str, Any] | None = None,
                ) -> Iterator[tuple[Daemon, Topology]]:  # fmt: skip
    """`more_config`: further top-level sections of edgebox.yaml (e.g. `images`)."""
    topology = Topology(f"e{int(time.time() * 1000) % 10**7}")
    topology.create()
    try:
        iface = {"name": SERVER_IF, "netns": topology.server_ns}
        config: dict[str, Any] = {
            "data_dir": str(work / "data"),
            "api": {"host": "127.0.0.1", "port": free_port()},
            "machine_http": {"host": SERVER_IP, "port": 5248, "netns": topology.server_ns},
            "dhcp": {
                "interfaces": [iface],
                "subnets": [
                    {
                        "cidr": SUBNET,
                        "router": SERVER_IP,
                        "ranges": [{"start": "10.233.0.100", "end": "10.233.0.199"}],
                    }
                ],
                "rogue_probe_interval": 0,
            },
            "tftp": {"interfaces": [iface], "roots": [str(tftp_root or loaders)]},
            "boot": {"loaders_dir": str(loaders)},
            **(more_config or {}),
        }
        path = work / "edgebox.yaml"
        work.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        subprocess.run(
            [sys.executable, "-m", "edgebox", "boot-resources", "--config", str(path), "import",
             str(ephemeral)],
            check=True, capture_output=True,
        )  # fmt: skip
        # Router advertisements, as the lab sends them: without one iPXE waits ~13 s for
        # IPv6 autoconfiguration after its DHCPv4 ACK.
        ra = subprocess.Popen(
            ["ip", "netns", "exec", topology.server_ns, "dnsmasq", "--no-daemon", "--port=0",
             "--no-resolv", "--no-hosts", f"--interface={SERVER_IF}", "--bind-interfaces",
             "--enable-ra", "--dhcp-range=fd00:eb::,ra-only,64", "--pid-file="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with running(path) as daemon:
                yield daemon, topology
                daemon.stop()
        finally:
            ra.terminate()
            ra.wait(10)
    finally:
        for pid in topology.pids():
            subprocess.run(["kill", "-9", str(pid)], check=False)
        topology.delete()


def api(daemon: Daemon, path: str) -> Any:
    request = urllib.request.Request(
        daemon.api_url + "/api/v1" + path,
        headers={"Authorization": f"Bearer {daemon.admin_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def start(topology: Topology, spec: VmSpec, work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    tap = f"tap-{spec.name}"[:15]
    topology.add_tap(tap)
    console = work / f"{spec.name}.console"
    extra: list[str] = []
    if spec.name.endswith("http"):
        # OVMF tries PXE before HTTP boot; switch its PXE off so this VM takes HTTP boot.
        extra = ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"]
    with console.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", topology.vms_ns, *qemu_argv(spec, tap, work), *extra],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return proc, console


def wait_enlisted(
    daemon: Daemon, vms: list[tuple[VmSpec, subprocess.Popen[bytes], Path]], timeout: float
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < len(vms):
        for spec, _, console in vms:
            if spec.mac in found:
                continue
            machines = api(daemon, f"/machines?mac={spec.mac}")["items"]
            if machines and "EDGEBOX: enlisted" in console.read_text(errors="replace"):
                found[spec.mac] = machines[0]
        time.sleep(1)
    for spec, proc, console in vms:
        if spec.mac not in found:
            proc.kill()
            tail = console.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{spec.name} not enlisted in {timeout}s:\n{tail}")
    for _, proc, _ in vms:
        try:
            proc.wait(60)  # the agent powers the VM off after enlisting
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the VM did not power itself off after enlisting") from None
    return found


def check_inventory(daemon: Daemon, spec: VmSpec, machine: dict[str, Any]) -> None:
    inventory = api(daemon, f"/machines/{machine['system_id']}/inventory")
    assert inventory["cpu"]["threads"] == spec.cpus
    # MemTotal: what the kernel has left of the VM's RAM after its own reservations.
    assert 0.75 * spec.memory_mib <= inventory["memory_mib"] <= spec.memory_mib
    disks = {d["name"]: d["size_bytes"] for d in inventory["disks"]}
    assert disks == {"vda": spec.disk_gib << 30}
    assert spec.mac in {n["mac"] for n in inventory["nics"]}
    assert inventory["dmi"]["vendor"] == "QEMU"
    assert {i["mac"] for i in machine["interfaces"]} >= {spec.mac}
    steps = [s["step"] for s in api(daemon, f"/boot/timeline?mac={spec.mac}")["steps"]]
    for step in ("dhcp", "script", "kernel", "initrd", "agent"):
        assert step in steps, (spec.name, steps)


def test_ipxe_rom_bios_and_uefi(tmp_path: Path, boot_files: tuple[Path, Path]) -> None:
    skip_unless_lab("qemu-system-x86_64", "ethtool")
    loaders, ephemeral = boot_files
    with boot_server(tmp_path, loaders, ephemeral) as (daemon, topology):
        specs = [
            VmSpec("a-bios", "52:54:00:e2:00:01", firmware="bios", cpus=2, memory_mib=512),
            VmSpec("b-uefi", "52:54:00:e2:00:02", firmware="uefi", memory_mib=768),
        ]
        vms = [(s, *start(topology, s, tmp_path)) for s in specs]
        found = wait_enlisted(daemon, vms, 180)
        for spec, _, _ in vms:
            check_inventory(daemon, spec, found[spec.mac])


def test_ovmf_native_pxe_and_http_boot(tmp_path: Path, boot_files: tuple[Path, Path]) -> None:
    skip_unless_lab("qemu-system-x86_64", "ethtool")
    loaders, ephemeral = boot_files
    with boot_server(tmp_path, loaders, ephemeral) as (daemon, topology):
        specs = [
            VmSpec("c-pxe", "52:54:00:e2:00:03", firmware="uefi", native_pxe=True),
            VmSpec("d-http", "52:54:00:e2:00:04", firmware="uefi", native_pxe=True),
        ]
        vms = [(s, *start(topology, s, tmp_path)) for s in specs]
        found = wait_enlisted(daemon, vms, 240)
        for spec, _, _ in vms:
            check_inventory(daemon, spec, found[spec.mac])
        kinds = {
            spec.name: [e["data"]["kind"] for e in api(daemon, "/events?limit=1000")["items"]
                        if e["type"] == "boot.dhcp" and e["data"]["mac"] == spec.mac]
            for spec in specs
        }  # fmt: skip
        assert kinds["c-pxe"][0] == "uefi" and "ipxe" in kinds["c-pxe"]  # snponly.efi, then iPXE
        assert kinds["d-http"][0] == "uefi_http" and "ipxe" in kinds["d-http"]
        tftp_steps = [s for s in api(daemon, "/boot/timeline?mac=52:54:00:e2:00:03")["steps"]
                      if s["step"] == "loader"]  # fmt: skip
        assert tftp_steps and tftp_steps[0]["detail"].startswith("snponly.efi")


def test_a_deployed_machine_boots_its_disk(tmp_path: Path, boot_files: tuple[Path, Path]) -> None:
    skip_unless_lab("qemu-system-x86_64", "ethtool")
    loaders, ephemeral = boot_files
    with boot_server(tmp_path, loaders, ephemeral) as (daemon, topology):
        spec = VmSpec("deployed", "52:54:00:e2:00:05", firmware="bios")
        proc, console = start(topology, spec, tmp_path)
        machine = wait_enlisted(daemon, [(spec, proc, console)], 180)[spec.mac]
        # Deployment arrives with a later issue: put the machine in Deployed and a bootable
        # sector on its disk by hand.
        conn = sqlite3.connect(tmp_path / "data" / "edgebox.db")
        conn.execute("UPDATE machines SET status = 'deployed' WHERE system_id = ?",
                     (machine["system_id"],))  # fmt: skip
        conn.commit()
        conn.close()
        with (tmp_path / f"{spec.name}.img").open("r+b") as disk:
            disk.write(_boot_sector())
        console2 = tmp_path / "deployed-2.console"
        with console2.open("wb") as out:
            argv = qemu_argv(spec, "tap-deployed", tmp_path)
            again = subprocess.Popen(
                ["ip", "netns", "exec", topology.vms_ns, *argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and DISK_MARKER not in console2.read_text(
                errors="replace"
            ):
                time.sleep(0.5)
            text = console2.read_text(errors="replace")
            assert DISK_MARKER in text, text[-3000:]
            assert "booting from its local disk" in text
        finally:
            again.kill()
            again.wait(10)
