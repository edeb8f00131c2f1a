"""A commissioning rig over a real temporary database: the services, test scripts, a machine
enlisted the way a booting agent enlists it, and an agent that calls the service as the real
one calls the machine API. Shared by the service, API and machine-HTTP tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgebox.domain.commissioning_settings import CommissioningSettings
from edgebox.domain.enlistment import identity_of
from edgebox.domain.hardware_bundle import parse_bundle
from edgebox.domain.identifiers import hostname_for, new_system_id
from edgebox.domain.models import Machine, NewMachine
from edgebox.services.boot_service import AgentCall
from edgebox.services.commissioning_service import CommissioningService
from edgebox.services.commissioning_watchdog import CommissioningWatchdog
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.machine_service import MachineService
from edgebox.services.script_agent import ScriptAgent
from edgebox.services.script_service import ScriptService, ScriptSource
from edgebox.storage.boot_store import BootStore, BootToken
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.run_store import RunStore
from edgebox.storage.script_store import ScriptStore
from edgebox.storage.writer import Tx
from tests.conftest import FakeClock


def script(name: str, type_: str, *header: str, body: str = "exit 0") -> ScriptSource:
    lines = ["#!/bin/sh", "# --- edgebox script ---", f"# name: {name}", f"# type: {type_}"]
    lines += [f"# {line}" for line in header]
    lines += ["# --- end ---", body, ""]
    return ScriptSource(name, "\n".join(lines))


SCRIPTS = [
    script("edgebox-inventory", "commissioning", "timeout: 120", "parallel: any"),
    script("firmware-info", "commissioning", "timeout: 60"),
    script(
        "disk-check", "testing", "hardware_type: storage", "timeout: 10m", "parallel: instance",
        "parameters:", "  storage: {type: storage}", "  passes: {type: int, default: 2, min: 1}",
    ),
    script("gpu-presence", "testing", "hardware_type: gpu", "timeout: 2m", "parallel: any"),
    script("cpu-burn", "testing", "hardware_type: cpu", "timeout: 1h"),
    script(
        "wipe-disks", "testing", "destructive: true", "parameters:",
        "  storage: {type: storage}",
    ),
]  # fmt: skip

MAC = "52:54:00:12:34:56"

# What the agent sends at enlistment (the older, cruder inventory: disks and NICs by name).
ENLIST_INVENTORY: dict[str, Any] = {
    "dmi": {"uuid": "6a0b9d2e-5d0c-4f4c-9c52-2f6f9d1a7e11", "serial": "SN-1"},
    "disks": [{"name": "vda"}, {"name": "vdb"}],
    "nics": [{"name": "eth0", "mac": MAC}],
}


def bundle(gpus: int = 1) -> str:
    """A bundle as `edgebox-inventory` prints it: two virtio disks, a NIC, `gpus` NVIDIA GPUs."""
    parts = [
        "=== /proc/cpuinfo\nprocessor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2\n",
        "=== /proc/meminfo\nMemTotal:        524288 kB\n",
        "=== command uname -m\nx86_64\n",
        "=== /sys/class/dmi/id/product_uuid\n6A0B9D2E-5D0C-4F4C-9C52-2F6F9D1A7E11\n",
        "=== /sys/class/dmi/id/product_serial\nSN-1\n",
    ]
    for disk in ("vda", "vdb"):
        parts.append(f"=== /sys/block/{disk}/size\n4194304\n")
        parts.append(f"=== link /sys/block/{disk}\n/sys/devices/pci0000:00/virtio3/block/{disk}\n")
    parts.append("=== link /sys/class/net/eth0/device\n/sys/devices/pci0000:00/0000:00:03.0\n")
    parts.append(f"=== /sys/class/net/eth0/address\n{MAC}\n")
    for index in range(gpus):
        dev = f"/sys/bus/pci/devices/0000:0{index + 1}:00.0/"
        parts += [f"=== {dev}vendor\n0x10de\n", f"=== {dev}device\n0x2330\n"]
        parts.append(f"=== {dev}class\n0x030200\n")
    return "".join(parts)


class RecordingTags:
    def __init__(self) -> None:
        self.retagged: list[str] = []

    async def retag_machine(self, system_id: str) -> None:
        self.retagged.append(system_id)


@dataclass
class Rig:
    db: Database
    clock: FakeClock
    settings: CommissioningSettings
    machines: MachineService
    scripts: ScriptService
    service: CommissioningService
    agent: ScriptAgent
    watchdog: CommissioningWatchdog
    runs: RunStore
    events: EventService
    tags: RecordingTags
    boot_store: BootStore

    async def enlist(self, mac: str = MAC, inventory: dict[str, Any] | None = None) -> Machine:
        inventory = ENLIST_INVENTORY if inventory is None else inventory
        identity = identity_of(mac, inventory)

        def new_machine() -> NewMachine:
            system_id = new_system_id()
            return NewMachine(system_id, hostname_for(system_id), interfaces=())

        # As the agent's token would say: the machine that has the MAC, if any (a boot window
        # of a known machine), else none (a new machine).
        row = await self.db.fetchone("SELECT machine_id FROM interfaces WHERE mac = ?", (mac,))
        enlisted = await self.boot_store.enlist(
            row[0] if row else None, identity, inventory, new_machine, lambda _: []
        )
        return enlisted.machine

    async def set_status(self, system_id: str, status: str) -> None:
        def job(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE machines SET status = ? WHERE system_id = ?", (status, system_id)
            )

        await self.db.write(job)

    async def event_messages(self, system_id: str) -> list[str]:
        return [e.message for e in await self.events.after(0, 1000, system_id)]


async def make_rig(
    db: Database, clock: FakeClock, settings: CommissioningSettings | None = None
) -> Rig:
    settings = settings or CommissioningSettings(tests=("disk-check",), timeout=600, grace=60)
    runs = RunStore(db)
    script_store = ScriptStore(db)
    machine_store = MachineStore(db)
    events = EventService(EventStore(db), EventBus())
    watchdog = CommissioningWatchdog(settings, runs=runs, clock=clock)
    tags = RecordingTags()
    scripts = ScriptService(script_store)
    await scripts.load_builtins(SCRIPTS)
    return Rig(
        db=db,
        clock=clock,
        settings=settings,
        machines=MachineService(machine_store),
        scripts=scripts,
        service=CommissioningService(
            settings, runs=runs, machines=machine_store, watchdog=watchdog, events=events
        ),
        agent=ScriptAgent(
            runs=runs,
            scripts=script_store,
            watchdog=watchdog,
            parse_inventory=parse_bundle,
            tags=tags,
        ),
        watchdog=watchdog,
        runs=runs,
        events=events,
        tags=tags,
        boot_store=BootStore(db),
    )


@dataclass
class PlanLine:
    id: int
    parallel: str
    timeout: int
    name: str


@dataclass
class FakeAgent:
    """Calls the service in the order the real agent calls the machine API."""

    agent: ScriptAgent
    machine: Machine
    purpose: str = "commission"
    boot: str = "boot-1"
    outputs: dict[int, dict[str, bytes]] = field(default_factory=dict)

    @property
    def call(self) -> AgentCall:
        token = BootToken(MAC, self.machine.id, self.purpose, math.inf)
        return AgentCall(token, self.machine.system_id)

    async def plan(self) -> list[PlanLine]:
        text = await self.agent.plan(self.call, self.boot)
        lines = []
        for line in text.splitlines():
            result_id, parallel, timeout, name = line.split("\t")
            lines.append(PlanLine(int(result_id), parallel, int(timeout), name))
        return lines

    async def run(
        self,
        result_id: int,
        *,
        exit_code: int = 0,
        stdout: bytes = b"ok\n",
        stderr: bytes = b"",
        result_file: bytes | None = None,
        timed_out: bool = False,
    ) -> None:
        await self.agent.script(self.call, result_id)
        await self.agent.env(self.call, result_id)
        await self.agent.start(self.call, self.boot, result_id)
        await self.agent.output(self.call, result_id, "stdout", stdout, len(stdout))
        await self.agent.output(self.call, result_id, "stderr", stderr, len(stderr))
        if result_file is not None:
            await self.agent.result_file(self.call, result_id, result_file)
        await self.agent.done(
            self.call,
            result_id,
            {"exit_code": exit_code, "runtime": 1.5, "timed_out": timed_out},
        )

    async def run_plan(self, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        """Run every line of the plan; the inventory script prints the bundle."""
        for line in await self.plan():
            kwargs: dict[str, Any] = {}
            if line.name == "edgebox-inventory":
                kwargs["stdout"] = bundle().encode()
            if line.name == "gpu-presence":
                kwargs["result_file"] = b"results: {gpus_seen: 1}\n"
            kwargs.update((overrides or {}).get(line.name, {}))
            await self.run(line.id, **kwargs)
