"""`edgebox lab up|down|status`: try edgebox with no hardware.

`up` builds the lab network (see topology.py), runs edgebox with its DHCP, TFTP and boot HTTP
inside the lab and its API on the host's 127.0.0.1, and starts N QEMU VMs that PXE-boot from
it (alternating BIOS and UEFI). It stays in the foreground; Ctrl-C stops the VMs, edgebox and
removes the lab. `down` cleans up a lab left behind by a crash; `status` shows one, with each
VM's QMP socket: the address of the `lab` power driver (`driver: lab, address: SOCKET`), which
powers the VM as a BMC would a server (a VM that powers itself off stays there, switched off).
Needs root. It installs nothing: it names the Debian packages that are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebox.app import Listening, StartupError, serve
from edgebox.bootstrap.logs import setup_logging
from edgebox.domain.settings import ConfigError, Settings, parse_settings
from edgebox.drivers.power.base import BmcConfig, PowerError
from edgebox.drivers.power.lab_qmp import LabQmpDriver
from edgebox.lab.topology import (
    SERVER_IF,
    SERVER_IP,
    SUBNET,
    LabError,
    Topology,
)
from edgebox.lab.vm import OVMF_CODE, VmSpec, check_socket_path, qemu_argv
from edgebox.services.boot_resources import BootResourceError, BootResources

REPO = Path(__file__).resolve().parents[2]
TOOLS = {
    "ip": "iproute2",
    "qemu-system-x86_64": "qemu-system-x86",
    "ethtool": "ethtool",
    "dnsmasq": "dnsmasq-base",
}
FILES = {
    Path("/usr/lib/ipxe/qemu/pxe-virtio.rom"): "ipxe-qemu",
    OVMF_CODE: "ovmf",
}


@dataclass
class LabState:
    name: str
    data_dir: str
    pids: list[int] = field(default_factory=list)
    consoles: dict[str, str] = field(default_factory=dict)
    qmp_sockets: dict[str, str] = field(default_factory=dict)

    def path(self) -> Path:
        return state_path(self.name, Path(self.data_dir))

    def save(self) -> None:
        self.path().parent.mkdir(parents=True, exist_ok=True)
        self.path().write_text(json.dumps(self.__dict__, indent=2))


def state_path(name: str, data_dir: Path) -> Path:
    return data_dir / "lab" / f"{name}.json"


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/edgebox-lab")
    return Path.home() / ".local" / "share" / "edgebox-lab"


def missing_requirements() -> list[str]:
    missing = [pkg for tool, pkg in TOOLS.items() if not _which(tool)]
    missing += [pkg for path, pkg in FILES.items() if not path.exists()]
    return sorted(set(missing))


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def lab_settings(name: str, data_dir: Path, api_port: int) -> Settings:
    topology = Topology(name)
    iface = {"name": SERVER_IF, "netns": topology.server_ns}
    config: dict[str, Any] = {
        "data_dir": str(data_dir),
        "site": {"name": f"lab-{name}"},
        "api": {"host": "127.0.0.1", "port": api_port},
        "machine_http": {"host": SERVER_IP, "port": 5248, "netns": topology.server_ns},
        "dhcp": {
            "interfaces": [iface],
            "subnets": [
                {
                    "cidr": SUBNET,
                    "ranges": [{"start": "10.233.0.100", "end": "10.233.0.199"}],
                    "router": SERVER_IP,
                    "dns": [SERVER_IP],
                    "lease_time": 3600,
                }
            ],
        },
        "tftp": {"interfaces": [iface]},
        "boot": {"loaders_dir": str(REPO / "firmware-images")},
    }
    return parse_settings(config, f"the lab {name}", str(data_dir))


def vm_specs(count: int, workdir: Path) -> list[VmSpec]:
    specs = []
    for i in range(count):
        firmware = "bios" if i % 2 == 0 else "uefi"
        name = f"vm{i}"
        qmp = workdir / f"{name}.qmp"
        check_socket_path(qmp)
        specs.append(VmSpec(name, f"52:54:00:eb:1a:{i:02x}", firmware=firmware, qmp_socket=qmp))
    return specs


def up(args: argparse.Namespace) -> int:
    missing = missing_requirements()
    if missing:
        print(f"edgebox lab: missing Debian packages: {' '.join(missing)}", file=sys.stderr)
        print(f"install them with: apt-get install {' '.join(missing)}", file=sys.stderr)
        return 1
    topology = Topology(args.name)
    if topology.exists():
        print(
            f"edgebox lab: lab {args.name!r} exists; remove it with: edgebox lab down "
            f"--name {args.name}",
            file=sys.stderr,
        )
        return 1
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    try:
        settings = lab_settings(args.name, data_dir, args.api_port)
    except ConfigError as exc:
        print(f"edgebox lab: {exc}", file=sys.stderr)
        return 1
    setup_logging(settings.log)
    if args.ephemeral:
        try:
            resource = BootResources(settings.resources_dir).import_dir(Path(args.ephemeral))
        except (BootResourceError, OSError) as exc:
            print(f"edgebox lab: cannot import the ephemeral environment: {exc}", file=sys.stderr)
            return 1
        print(f"edgebox lab: ephemeral environment {resource.digest[:12]} "
              f"(kernel {resource.kernel_version})", flush=True)  # fmt: skip
    state = LabState(args.name, str(data_dir))
    workdir = data_dir / "lab" / args.name
    workdir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        specs = vm_specs(args.vms, workdir)
        topology.create()
        procs.append(_router_advertisements(topology, workdir))
        state.pids = [p.pid for p in procs]
        state.save()

        def start_vms(listening: Listening, token: str | None) -> None:
            for spec in specs:
                proc, console = _start_vm(topology, spec, workdir)
                procs.append(proc)
                state.pids.append(proc.pid)
                state.consoles[spec.name] = str(console)
                state.qmp_sockets[spec.name] = str(spec.qmp_socket)
            state.save()
            print(f"edgebox lab {args.name}: API {listening.api_url}; {args.vms} VMs booting; "
                  f"consoles in {workdir}", flush=True)  # fmt: skip

        asyncio.run(serve(settings, then=start_vms))
    except (LabError, StartupError, OSError, ValueError) as exc:
        print(f"edgebox lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        _stop(procs)
        topology.delete()
        state.path().unlink(missing_ok=True)
    return 0


def _router_advertisements(topology: Topology, workdir: Path) -> subprocess.Popen[bytes]:
    # Without an RA, iPXE waits ~13 s for IPv6 autoconfiguration after its DHCPv4 ACK.
    log = (workdir / "ra.log").open("wb")
    return subprocess.Popen(
        ["ip", "netns", "exec", topology.server_ns, "dnsmasq", "--no-daemon", "--port=0",
         "--no-resolv", "--no-hosts", f"--interface={SERVER_IF}", "--bind-interfaces",
         "--enable-ra", "--dhcp-range=fd00:eb::,ra-only,64", "--pid-file="],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _start_vm(
    topology: Topology, spec: VmSpec, workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    tap = f"tap-{spec.name}"[:15]
    topology.add_tap(tap)
    console = workdir / f"{spec.name}.console"
    with console.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", topology.vms_ns, *qemu_argv(spec, tap, workdir)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    return proc, console


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def down(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    topology = Topology(args.name)
    path = state_path(args.name, data_dir)
    pids: list[int] = []
    if path.exists():
        pids = list(json.loads(path.read_text()).get("pids", []))
    # Whatever still runs inside the lab's own namespaces is the lab's.
    pids += topology.pids()
    for pid in sorted(set(pids)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    topology.delete()
    path.unlink(missing_ok=True)
    print(f"edgebox lab {args.name}: removed ({len(set(pids))} processes ended)")
    return 0


def status(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    topology = Topology(args.name)
    path = state_path(args.name, data_dir)
    if not topology.exists() and not path.exists():
        print(f"edgebox lab {args.name}: not running")
        return 1
    state = json.loads(path.read_text()) if path.exists() else {}
    alive = [pid for pid in state.get("pids", []) if Path(f"/proc/{pid}").exists()]
    print(f"edgebox lab {args.name}: namespaces {topology.server_ns}, {topology.vms_ns}")
    print(f"  processes alive: {len(alive)} of {len(state.get('pids', []))}")
    sockets = state.get("qmp_sockets", {})
    for vm, console in sorted(state.get("consoles", {}).items()):
        print(f"  {vm}: console {console}")
        if vm in sockets:
            power = asyncio.run(_power_state(sockets[vm]))
            print(f"  {vm}: power {power}; driver lab, address {sockets[vm]}")
    return 0


async def _power_state(socket: str) -> str:
    driver = LabQmpDriver(BmcConfig("lab", socket, options={"timeout": 2}))
    try:
        return str(await driver.query())
    except PowerError as exc:
        return f"unknown ({exc.message})"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgebox lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="lab", help="lab name (default: lab)")
    parser.add_argument("--data-dir", help="where the lab's edgebox keeps its data")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="build the lab, run edgebox and the VMs")
    start.add_argument("--vms", type=int, default=3, help="how many VMs (default 3)")
    start.add_argument("--api-port", type=int, default=5240, help="API port on 127.0.0.1")
    start.add_argument(
        "--ephemeral", metavar="DIR", help="import this build of packaging/ephemeral/build first"
    )
    commands.add_parser("down", help="remove a lab left behind")
    commands.add_parser("status", help="show a lab")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("edgebox lab: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    return {"up": up, "down": down, "status": status}[args.command](args)
