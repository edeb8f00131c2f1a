"""A deploy rig over a real temporary database: a signed image imported into a real cache, the
deploy services, a fake power queue, the real machine-facing HTTP app, and simulated agents
that network-boot, write the image (to memory) and boot it, calling edgebox as the real agent
and the deployed OS's cloud-init do. Shared by the service, machine-HTTP and API tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient, TestServer

from edgebox.domain.deploy_settings import DeploySettings
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine
from edgebox.domain.power import PowerOp, PowerOpState
from edgebox.domain.settings import BootSettings
from edgebox.net.machine_http import build_machine_app
from edgebox.services.boot_resources import BootResources
from edgebox.services.boot_service import BootService
from edgebox.services.deploy_parts import DeployParts, build_deploy_parts
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.image_service import ImageService
from edgebox.services.image_signing import write_key_pair
from edgebox.services.image_sources import LocalSource
from edgebox.services.loaders import check_loaders
from edgebox.services.machine_service import MachineService
from edgebox.storage.boot_store import BootStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.image_store import ImageRecord, ImageState
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.writer import Tx
from tests.boot_tokens import fetch_token
from tests.conftest import FakeClock
from tests.unit.services.image_fixtures import BuiltImage, build_image, make_service, running


@dataclass
class FakeOp:
    id: int
    op: PowerOp
    system_id: str
    state: PowerOpState
    error: str = ""


@dataclass
class FakeBmc:
    driver: str = "fake"


@dataclass
class FakePower:
    """The power queue as deploys use it: requests are recorded, and end as `outcome` says."""

    bmcs: dict[str, FakeBmc] = field(default_factory=dict)  # system_id -> its BMC
    ids: dict[int, str] = field(default_factory=dict)  # machine id -> system_id
    requests: list[tuple[str, PowerOp]] = field(default_factory=list)
    ops_by_id: dict[int, FakeOp] = field(default_factory=dict)
    outcome: PowerOpState = PowerOpState.DONE
    error: str = ""

    async def has_bmc(self, machine_id: int) -> bool:
        return self.ids.get(machine_id) in self.bmcs

    async def bmc(self, system_id: str) -> FakeBmc | None:
        return self.bmcs.get(system_id)

    async def request(
        self, system_id: str, op: PowerOp, actor: str, *, system: bool = False
    ) -> FakeOp:
        assert system, "deploys drive power as edgebox"
        self.requests.append((system_id, op))
        record = FakeOp(len(self.ops_by_id) + 1, op, system_id, self.outcome, self.error)
        self.ops_by_id[record.id] = record
        return record

    async def ops(self, op_ids: Iterable[int]) -> list[FakeOp]:
        return [self.ops_by_id[i] for i in op_ids if i in self.ops_by_id]

    def of(self, system_id: str) -> list[PowerOp]:
        return [op for sid, op in self.requests if sid == system_id]


def make_boot_build(root: Path) -> Path:
    build = root / "boot-build"
    build.mkdir(parents=True)
    files = {}
    for name in ("vmlinuz", "initrd.gz"):
        (build / name).write_bytes(name.encode())
        files[name] = {"sha256": hashlib.sha256(name.encode()).hexdigest(), "size": len(name)}
    (build / "manifest.json").write_text(json.dumps({"files": files, "kernel_version": "6.1"}))
    return build


@dataclass
class DeployRig:
    db: Database
    clock: FakeClock
    images: ImageService
    image: ImageRecord
    built: BuiltImage
    parts: DeployParts
    power: FakePower
    machines: MachineService
    events: EventService
    client: TestClient
    macs: int = 0
    # Each machine's seed path, as its deploy wrote it to the disk: a later boot reads it.
    seeds: dict[str, str] = field(default_factory=dict)

    async def ready_machine(
        self,
        *,
        cores: int | None = 8,
        memory: int | None = 16384,
        tags: tuple[str, ...] = (),
        pool: str = "default",
        zone: str = "default",
        arch: str = "amd64/generic",
        bmc: str | None = "fake",
        status: Status = Status.READY,
    ) -> Machine:
        self.macs += 1
        mac = f"52:54:00:00:{self.macs // 256:02x}:{self.macs % 256:02x}"
        machine = await self.machines.create([mac], "test", arch=arch, pool=pool, zone=zone,
                                             tags=tags)  # fmt: skip
        inventory = {"cpu": {"cores": cores, "arch": "x86_64"}, "memory": {"total_mib": memory}}

        def job(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE machines SET status = ? WHERE id = ?", (status.value, machine.id)
            )
            tx.conn.execute(
                "INSERT INTO machine_inventory (machine_id, data, updated_at) VALUES (?, ?, 0)",
                (machine.id, json.dumps(inventory)),
            )

        await self.db.write(job)
        if bmc is not None:
            self.power.bmcs[machine.system_id] = FakeBmc(bmc)
        self.power.ids[machine.id] = machine.system_id
        return await self.machines.get(machine.system_id)

    async def status(self, system_id: str) -> Status:
        return (await self.machines.get(system_id)).status

    async def messages(self, system_id: str) -> list[str]:
        return [e.message for e in await self.events.after(0, 1000, system_id)]

    def agent(self, machine: Machine) -> SimAgent:
        return SimAgent(self.client, machine.interfaces[0].mac, seeds=self.seeds)

    async def wait_for(self, system_id: str, status: Status, within: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while await self.status(system_id) is not status:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{system_id} is {await self.status(system_id)}, not {status}")
            await asyncio.sleep(0.01)


@dataclass
class SimAgent:
    """A machine: it network-boots (the iPXE script gives it a token and a purpose), and its
    agent calls the machine API over HTTP as packaging/ephemeral/agent does."""

    client: TestClient
    mac: str
    token: str = ""
    purpose: str = ""
    written: bytes = b""
    seeds: dict[str, str] = field(default_factory=dict)

    async def boot(self) -> str:
        """Network-boot; the purpose (deploy, erase, ...) or "local" for a local-disk answer."""
        resp = await self.client.get(f"/boot/ipxe?mac={self.mac}")
        script = await resp.text()
        if "\nexit 1\n" in script and "kernel " not in script:
            self.purpose = "local"
            return "local"
        words = script.split()
        self.token = await fetch_token(self.client, script)
        self.purpose = next(w.split("=", 1)[1] for w in words if w.startswith("edgebox.purpose="))
        return self.purpose

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        resp = await self.client.post(path, headers=headers, **kwargs)
        body = await resp.read()
        if resp.content_type == "application/json":
            return resp.status, json.loads(body)
        return resp.status, body.decode()

    async def plan(self, kind: str = "deploy") -> dict[str, str]:
        status, text = await self.post(f"/machine/v1/{kind}/plan", data=b"{}")
        assert status == 200, text
        plan = dict(line.split("=", 1) for line in text.splitlines())
        if plan.get("seed_url"):
            self.seeds[self.mac] = urlsplit(plan["seed_url"]).path  # written to the seed disk
        return plan

    async def deploy(
        self, *, fail: dict[str, str] | None = None, tamper: bool = False, log: bytes = b""
    ) -> dict[str, Any]:
        """The agent's deploy: plan, download (hashing what it reads), progress, log, done."""
        plan = await self.plan()
        resp = await self.client.get(urlsplit(plan["image_url"]).path)
        assert resp.status == 200
        data = await resp.read()
        if tamper:
            data = data[:-1] + bytes([data[-1] ^ 1])
        self.written = data
        for step in ("download", "write", "write", "verify"):
            status, answer = await self.post(
                "/machine/v1/deploy/progress",
                json={"step": step, "done": len(data), "total": int(plan["size"])},
            )
            assert (status, answer) == (200, {"ok": True}), answer
        if log:
            await self.post("/machine/v1/deploy/log", data=log)
        body: dict[str, Any] = (
            {"ok": False, **fail}
            if fail
            else {
                "ok": True,
                "disk": plan["disk"] or "vda",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        status, answer = await self.post("/machine/v1/deploy/done", json=body)
        assert status == 200, answer
        return dict(answer)

    async def cloud_init(self, system_id: str, name: str) -> tuple[int, str]:
        """What the deployed OS reads, at the seed URL the deploy plan gave."""
        seed = self.seeds.get(self.mac, "")
        assert seed.startswith(f"/cloud-init/{system_id}/"), seed
        resp = await self.client.get(f"{seed}{name}")
        return resp.status, await resp.text()


async def import_ready(images: ImageService, built: BuiltImage) -> ImageRecord:
    image, _ = await images.import_image(LocalSource(built.directory), "test")
    async with running(images):
        for _ in range(2000):
            image = await images.resolve(image.id)
            if image.state is not ImageState.IMPORTING:
                break
            await asyncio.sleep(0.01)
    assert image.state is ImageState.READY, image.error
    return image


@contextlib.asynccontextmanager
async def deploy_rig(
    db: Database, clock: FakeClock, tmp_path: Path, *, silence_limit: int = 1800
) -> AsyncIterator[DeployRig]:
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    key = write_key_pair(tmp_path / "builder")
    images = make_service(db, clock, tmp_path / "cache", key)
    await asyncio.to_thread(images.files.ensure_dirs)
    built = build_image(tmp_path / "image", key, name="tiny", size=200_000)
    image = await import_ready(images, built)
    events = EventService(EventStore(db), EventBus())
    power = FakePower()
    parts = build_deploy_parts(
        DeploySettings(timeout=silence_limit), db, images=images, events=events, clock=clock,
        power=power, poll_s=0.01,
    )  # fmt: skip
    machines = MachineService(MachineStore(db))
    resources = BootResources(tmp_path / "resources")
    resources.import_dir(make_boot_build(tmp_path))
    boot = BootService(
        BootSettings(token_ttl=600), store=BootStore(db), events=events, clock=clock,
        resources=resources, loaders=check_loaders(tmp_path / "no-loaders"),
        boots_locally=parts.deploys.boots_locally,
    )  # fmt: skip
    app = build_machine_app(boot, machines, images=images, deploys=parts.agent)
    client = TestClient(TestServer(app))
    await client.start_server()
    await parts.deploys.load()
    tasks = [asyncio.create_task(parts.deploys.run()), asyncio.create_task(parts.releases.run())]
    try:
        yield DeployRig(db, clock, images, image, built, parts, power, machines, events, client)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
