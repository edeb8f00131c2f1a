"""The machine API's script calls (docs/commissioning-contract.md §1) over real HTTP: an aiohttp
client against the real machine-facing app, with real per-boot tokens from the iPXE script."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.domain.models import MachineFilter
from edgebox.domain.script_runs import RunKind
from edgebox.domain.settings import BootSettings
from edgebox.net.machine_http import build_machine_app
from edgebox.services.boot_resources import BootResources
from edgebox.services.boot_service import BootService
from edgebox.services.commissioning_service import RunRequest
from edgebox.services.loaders import check_loaders
from edgebox.storage.boot_store import BootStore
from edgebox.storage.database import Database
from tests.boot_tokens import fetch_token
from tests.conftest import FakeClock
from tests.unit.services.commissioning_rig import ENLIST_INVENTORY, MAC, Rig, bundle, make_rig


def make_build(root: Path) -> Path:
    build = root / "build"
    build.mkdir(parents=True)
    files = {}
    for name in ("vmlinuz", "initrd.gz"):
        (build / name).write_bytes(name.encode())
        files[name] = {"sha256": hashlib.sha256(name.encode()).hexdigest(), "size": len(name)}
    (build / "manifest.json").write_text(json.dumps({"files": files, "kernel_version": "6.1"}))
    return build


@dataclass
class Machine:
    client: TestClient
    rig: Rig
    mac: str = MAC
    token: str = ""

    async def boot(self) -> str:
        """Network-boot: fetch the iPXE script, keep its token, enlist as the agent does."""
        resp = await self.client.get(f"/boot/ipxe?mac={self.mac}")
        script = await resp.text()
        self.token = await fetch_token(self.client, script)
        purpose = next(w.split("=", 1)[1] for w in script.split() if "edgebox.purpose=" in w)
        status, _ = await self.post("/machine/v1/enlist", json={"inventory": ENLIST_INVENTORY})
        assert status == 200
        return purpose

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        resp = await self.client.post(path, headers=headers, **kwargs)
        body = await resp.read()
        if resp.content_type == "application/json":
            return resp.status, json.loads(body)
        return resp.status, body

    async def plan(self) -> list[list[str]]:
        status, body = await self.post("/machine/v1/plan", data=b"{}")
        assert status == 200
        return [line.split("\t") for line in body.decode().splitlines()]

    async def run(self, result_id: str, stdout: bytes = b"ok\n", code: int = 0) -> None:
        base = f"/machine/v1/results/{result_id}"
        for call, data in (("start", b"{}"), ("stdout", stdout), ("stderr", b"")):
            status, answer = await self.post(f"{base}/{call}", data=data)
            assert (status, answer) == (200, {"ok": True}), (call, answer)
        status, answer = await self.post(
            f"{base}/done", json={"exit_code": code, "runtime": 0.25, "timed_out": False}
        )
        assert (status, answer) == (200, {"ok": True})


@pytest.fixture
async def machine(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Machine]:
    rig = await make_rig(db, clock)
    resources = BootResources(tmp_path / "resources")
    resources.import_dir(make_build(tmp_path))
    boot = BootService(
        BootSettings(token_ttl=600),
        store=BootStore(db),
        events=rig.events,
        clock=clock,
        resources=resources,
        loaders=check_loaders(tmp_path / "no-loaders"),
    )
    client = TestClient(TestServer(build_machine_app(boot, rig.machines, rig.agent)))
    await client.start_server()
    try:
        yield Machine(client, rig)
    finally:
        await client.close()


async def commissioned_machine(machine: Machine) -> str:
    assert await machine.boot() == "enlist"
    page = await machine.rig.machines.query(MachineFilter(), 5)
    system_id = page.items[0].system_id
    await machine.rig.service.start(
        system_id, RunKind.COMMISSIONING, RunRequest("olga", ("disk-check",))
    )
    assert await machine.boot() == "commission"
    return system_id


async def test_a_commissioning_over_http(machine: Machine) -> None:
    system_id = await commissioned_machine(machine)
    plan = await machine.plan()
    assert [(p[1], p[2], p[3]) for p in plan] == [
        ("any", "120", "edgebox-inventory"),
        ("disabled", "60", "firmware-info"),
        ("instance", "600", "disk-check"),
        ("instance", "600", "disk-check"),
    ]
    disk = plan[2][0]
    status, script = await machine.post(f"/machine/v1/results/{disk}/script", data=b"{}")
    assert status == 200 and script.startswith(b"#!/bin/sh\n# --- edgebox script ---\n")
    status, env = await machine.post(f"/machine/v1/results/{disk}/env", data=b"{}")
    assert status == 200 and b"export EDGEBOX_DEVICE='/dev/vda'\n" in env
    status, answer = await machine.post("/machine/v1/heartbeat", json={"state": "running"})
    assert answer == {"action": "continue"}
    await machine.run(plan[0][0], stdout=bundle().encode())
    status, answer = await machine.post(
        f"/machine/v1/results/{plan[1][0]}/result", data=b"status: skipped\n"
    )
    assert status == 409 and "call start first" in answer["message"]
    for line in plan[1:]:
        await machine.run(line[0])
    status, answer = await machine.post("/machine/v1/heartbeat", json={"state": "done"})
    assert answer == {"action": "poweroff"}
    assert (await machine.rig.machines.get(system_id)).status.value == "ready"
    inventory = await machine.rig.machines.inventory(system_id)
    assert inventory is not None and inventory["cpu"]["model"] == "Test CPU"  # type: ignore[index]


async def test_the_calls_refuse_what_they_must(machine: Machine) -> None:
    await commissioned_machine(machine)
    plan = await machine.plan()
    result = plan[0][0]
    token = machine.token
    machine.token = ""
    status, answer = await machine.post("/machine/v1/plan", data=b"{}")
    assert status == 401 and answer["error"] == "unauthorized"
    machine.token = "ebb_forged"
    assert (await machine.post(f"/machine/v1/results/{result}/start"))[0] == 401
    machine.token = token
    status, answer = await machine.post("/machine/v1/results/999999/start")
    assert status == 404 and answer["error"] == "not_found"
    status, answer = await machine.post(f"/machine/v1/results/{result}/start")
    assert status == 200
    bad_bodies = [b"[1]", b"not json"] + [
        json.dumps(body).encode()
        for body in ({"exit_code": "0"}, {"runtime": -1}, {"timed_out": 1})
    ]
    for body in bad_bodies:
        status, answer = await machine.post(f"/machine/v1/results/{result}/done", data=body)
        assert status == 400 and answer["error"] == "bad_request", body
    # Another machine's boot (enlisting) may not touch these results.
    other = Machine(machine.client, machine.rig, mac="52:54:00:00:00:77")
    assert await other.boot() == "enlist"
    status, answer = await other.post(f"/machine/v1/results/{result}/script")
    assert status == 403 and "not for commissioning or testing" in answer["message"]
    status, answer = await other.post("/machine/v1/heartbeat", json={})
    assert answer == {"action": "poweroff"}  # enlisting: the boot service answers


async def test_output_keeps_its_tail(machine: Machine) -> None:
    system_id = await commissioned_machine(machine)
    [line, *_] = await machine.plan()
    await machine.post(f"/machine/v1/results/{line[0]}/start")
    big = b"".join(b"%09d\n" % i for i in range(500_000))  # 5,000,000 bytes
    status, answer = await machine.post(f"/machine/v1/results/{line[0]}/stdout", data=big)
    assert (status, answer) == (200, {"ok": True})
    detail = await machine.rig.service.result(system_id, int(line[0]))
    data, size = detail.output["stdout"]
    assert size == len(big) and data == big[-4 * 1024 * 1024 :]


async def test_throughput_streams_n_bytes(machine: Machine) -> None:
    await commissioned_machine(machine)
    status, body = await machine.post("/machine/v1/throughput?bytes=3000000", data=b"{}")
    assert status == 200 and len(body) == 3_000_000
    status, body = await machine.post("/machine/v1/throughput?bytes=0", data=b"{}")
    assert status == 200 and body == b""
    for bad in ("", "-1", "1e6", str(17 * 1024**3)):
        status, answer = await machine.post(f"/machine/v1/throughput?bytes={bad}")
        assert status == 400 and "bytes" in answer["message"], bad
    machine.token = ""
    assert (await machine.post("/machine/v1/throughput?bytes=10"))[0] == 401
