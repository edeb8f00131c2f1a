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

import aiohttp

from edgebox.app import Listening, Started, StartupError, serve
from edgebox.bootstrap.logs import setup_logging
from edgebox.domain.settings import ConfigError, Settings, parse_settings
from edgebox.drivers.power.base import BmcConfig, PowerError
from edgebox.drivers.power.lab_qmp import LabQmpDriver
from edgebox.lab.demo import run_demo
from edgebox.lab.operator import (
    LabApi,
    LabApiError,
    assign_bmcs,
    import_images,
    issue_lab_token,
    login_cli,
)
from edgebox.lab.topology import (
    SERVER_IF,
    SERVER_IP,
    SUBNET,
    LabError,
    Topology,
)
from edgebox.lab.vm import OVMF_CODE, VmSpec, check_socket_path, qemu_argv
from edgebox.services.boot_resources import BootResourceError, BootResources
from edgebox.services.image_signing import KeyFileError, KeyPair, write_key_pair
from edgebox.services.loaders import check_loaders

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


def data_dir_of(args: argparse.Namespace) -> Path:
    """--data-dir, else $EDGEBOX_LAB_DATA_DIR (scripts/run's commands share it that way),
    else /var/lib/edgebox-lab (root) or ~/.local/share/edgebox-lab."""
    chosen = args.data_dir or os.environ.get("EDGEBOX_LAB_DATA_DIR")
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/lib/edgebox-lab")
    return Path.home() / ".local" / "share" / "edgebox-lab"


def missing_requirements() -> list[str]:
    missing = [pkg for tool, pkg in TOOLS.items() if not _which(tool)]
    missing += [pkg for path, pkg in FILES.items() if not path.exists()]
    return sorted(set(missing))


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def lab_settings(
    name: str, data_dir: Path, api_port: int, trusted_keys: Sequence[Path] = ()
) -> Settings:
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
        "images": {"trusted_keys": [str(key) for key in trusted_keys]},
    }
    return parse_settings(config, f"the lab {name}", str(data_dir))


def signing_key(data_dir: Path) -> KeyPair:
    """The lab's image signing key (made once): it signs the images the lab builds, and the
    lab's edgebox trusts it."""
    prefix = data_dir / "lab" / "signing"
    private, public = prefix.with_suffix(".key"), prefix.with_suffix(".pub")
    if private.exists() and public.exists():
        return KeyPair(private, public, "")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    return write_key_pair(prefix)


# The VMs' firmware, in turn: BIOS with QEMU's iPXE ROM; UEFI with OVMF's own PXE client (no
# iPXE ROM: it fetches snponly.efi over TFTP, as a server with vendor firmware does); UEFI
# with the iPXE ROM.
FIRMWARE_CYCLE = (("bios", False), ("uefi", True), ("uefi", False))


def vm_specs(count: int, workdir: Path) -> list[VmSpec]:
    specs = []
    for i in range(count):
        firmware, native_pxe = FIRMWARE_CYCLE[i % len(FIRMWARE_CYCLE)]
        name = f"vm{i}"
        qmp = workdir / f"{name}.qmp"
        check_socket_path(qmp)
        specs.append(
            VmSpec(name, f"52:54:00:eb:1a:{i:02x}", firmware=firmware, native_pxe=native_pxe,
                   qmp_socket=qmp)
        )  # fmt: skip
    return specs


def prepare(args: argparse.Namespace, data_dir: Path) -> Settings:
    """The lab's settings once its requirements are met; LabError says what is missing."""
    missing = missing_requirements()
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)}\n"
                       f"install them with: apt-get install {' '.join(missing)}")  # fmt: skip
    loaders = check_loaders(REPO / "firmware-images")
    if loaders.missing or loaders.altered:  # the UEFI VMs with the firmware's own PXE need them
        raise LabError("; ".join(loaders.messages))
    if Topology(args.name).exists():
        raise LabError(f"lab {args.name!r} exists; remove it with: edgebox lab down "
                       f"--name {args.name}")  # fmt: skip
    try:
        key = signing_key(data_dir)
        settings = lab_settings(args.name, data_dir, args.api_port, [key.public_path])
    except (ConfigError, KeyFileError) as exc:
        raise LabError(str(exc)) from None
    setup_logging(settings.log)
    if args.ephemeral:
        try:
            resource = BootResources(settings.resources_dir).import_dir(Path(args.ephemeral))
        except (BootResourceError, OSError) as exc:
            raise LabError(f"cannot import the ephemeral environment: {exc}") from None
        print(f"edgebox lab: ephemeral environment {resource.digest[:12]} "
              f"(kernel {resource.kernel_version})", flush=True)  # fmt: skip
    return settings


def up(args: argparse.Namespace) -> int:
    data_dir = data_dir_of(args)
    try:
        settings = prepare(args, data_dir)
    except (LabError, OSError) as exc:
        print(f"edgebox lab: {exc}", file=sys.stderr)
        return 1
    topology = Topology(args.name)
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
        run = LabRun(args, settings, topology, specs, workdir, state, procs)
        return asyncio.run(run.main())
    except (LabError, StartupError, OSError, ValueError, LabApiError, TimeoutError) as exc:
        print(f"edgebox lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(procs)
        topology.delete()
        state.path().unlink(missing_ok=True)


@dataclass
class LabRun:
    """One `lab up`: edgebox served in this process, the VMs, and the lab's own API work."""

    args: argparse.Namespace
    settings: Settings
    topology: Topology
    specs: list[VmSpec]
    workdir: Path
    state: LabState
    procs: list[subprocess.Popen[bytes]]
    assigned: dict[str, str] = field(default_factory=dict)  # VM name -> system_id

    async def main(self) -> int:
        """Serve until a signal (or the demo's end); the lab's work runs beside it."""
        stop, ready = asyncio.Event(), asyncio.Event()
        started: list[Started] = []
        started_at = time.time()

        def on_ready(what: Started) -> None:
            started.append(what)
            ready.set()

        async def until_ready() -> None:
            await ready.wait()

        try:
            async with asyncio.TaskGroup() as group:
                server = group.create_task(serve(self.settings, then=on_ready, stop=stop))
                waiter = group.create_task(until_ready())
                await asyncio.wait([server, waiter], return_when=asyncio.FIRST_COMPLETED)
                if not started:
                    return 1  # serve ended before it listened; the TaskGroup raises why
                work = group.create_task(self._work(started[0], stop, started_at))

                async def cancel_work_on_stop() -> None:
                    await stop.wait()  # Ctrl-C: the lab's calls end before the API goes
                    work.cancel()

                group.create_task(cancel_work_on_stop())
                await server
                if work.done() and not work.cancelled():
                    return work.result()
                work.cancel()
                return 0
        except ExceptionGroup as group_error:
            raise group_error.exceptions[0] from None

    async def _work(self, started: Started, stop: asyncio.Event, started_at: float) -> int:
        """The lab's side; a failure is said and stops the lab, as the demo's end does."""
        outcome = 1
        try:
            outcome = await self._operate(started, started_at)
        except* (LabApiError, TimeoutError, OSError, aiohttp.ClientError) as failed:
            print(f"edgebox lab: {failed.exceptions[0]}", file=sys.stderr, flush=True)
        finally:
            stop.set()
        return outcome

    async def _operate(self, started: Started, started_at: float) -> int:
        """Start the VMs, then do as an operator would; with --demo, the whole lifecycle."""
        self._start_vms(started.listening)
        token = await issue_lab_token(started.auth)
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
            api = LabApi(session, started.listening.api_url, token)
            bmcs = group.create_task(assign_bmcs(api, self.specs, self.assigned))
            await import_images(api, [Path(d) for d in self.args.image])
            said = await asyncio.to_thread(login_cli, api.url, token, dict(os.environ))
            print(f"edgebox lab: {said}", flush=True)
            if not self.args.demo:
                print(NEXT_STEPS, flush=True)
                await asyncio.Event().wait()  # until the lab is stopped
            outcome = await run_demo(api, self.specs, self.assigned, os.environ, started_at)
            bmcs.cancel()
        return outcome

    def _start_vms(self, listening: Listening) -> None:
        for spec in self.specs:
            proc, console = _start_vm(self.topology, spec, self.workdir)
            self.procs.append(proc)
            self.state.pids.append(proc.pid)
            self.state.consoles[spec.name] = str(console)
            self.state.qmp_sockets[spec.name] = str(spec.qmp_socket)
        self.state.save()
        print(f"edgebox lab {self.args.name}: API {listening.api_url}; {len(self.specs)} VMs "
              f"booting; consoles in {self.workdir}", flush=True)  # fmt: skip


NEXT_STEPS = """edgebox lab: the VMs enlist by themselves. Then, in another terminal:
    edgebox machines list
    edgebox commission --all --wait
    edgebox deploy --all --image tiny --wait
    edgebox release --all --erase quick --wait
(Ctrl-C here stops the lab.)"""


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
    data_dir = data_dir_of(args)
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
    data_dir = data_dir_of(args)
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
    parser.add_argument(
        "--data-dir",
        help="where the lab's edgebox keeps its data (default: $EDGEBOX_LAB_DATA_DIR, else "
        "/var/lib/edgebox-lab)",
    )
    # The same two after the command too (`scripts/run --name x` passes them to `up`).
    either = argparse.ArgumentParser(add_help=False)
    either.add_argument("--name", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    either.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser(
        "up", parents=[either], help="build the lab, run edgebox and the VMs"
    )
    start.add_argument("--vms", type=int, default=3, help="how many VMs (default 3)")
    start.add_argument("--api-port", type=int, default=5240, help="API port on 127.0.0.1")
    start.add_argument(
        "--ephemeral", metavar="DIR", help="import this build of packaging/ephemeral/build first"
    )
    start.add_argument(
        "--image",
        metavar="DIR",
        action="append",
        default=[],
        help="import this signed image (scripts/build-image, signed with `edgebox lab key`)",
    )
    start.add_argument(
        "--demo",
        action="store_true",
        help="commission, deploy (image tiny) and release every VM, print the timelines, stop",
    )
    commands.add_parser("down", parents=[either], help="remove a lab left behind")
    commands.add_parser("status", parents=[either], help="show a lab")
    commands.add_parser(
        "key", parents=[either], help="print the lab's image signing key's path (made once)"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("edgebox lab: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    return {"up": up, "down": down, "status": status, "key": key}[args.command](args)


def key(args: argparse.Namespace) -> int:
    """The private key's path, for scripts/build-image --key; the lab trusts its public half."""
    data_dir = data_dir_of(args)
    try:
        print(signing_key(data_dir).private_path)
    except (KeyFileError, OSError) as exc:
        print(f"edgebox lab: {exc}", file=sys.stderr)
        return 1
    return 0
