"""`edgebox allocate`, `deploy`, `release` and `deployment` against the real API app (in a
thread with its own loop, a real temporary database and image cache), with simulated machines
in the server's loop doing the machine's part (the deploy rig)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from fake_edgebox_api import Invoke, make_invoker

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.cli import deploy as deploy_cli
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine
from edgebox.services.auth_service import AuthService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.unit.services.deploy_rig import DeployRig, deploy_rig

T = TypeVar("T")
USER_DATA = "#cloud-config\npackages: [htop]\n"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOk8bq6y olga@laptop"


class RealEdgebox:
    """The API of a real edgebox with the deploy services, served from a thread."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.token = ""
        self.stack = contextlib.AsyncExitStack()

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    def call(self, work: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)  # type: ignore[arg-type]

    async def _start(self) -> None:
        clock = FakeClock()
        self.db = await Database.open(self.data / "edgebox.db", clock.now)
        self.writer = asyncio.create_task(self.db.writer.run())
        self.rig: DeployRig = await self.stack.enter_async_context(
            deploy_rig(self.db, clock, self.data / "rig")
        )
        auth = AuthService(AuthStore(self.db), clock)
        ctx = ApiContext(
            machines=self.rig.machines, auth=auth, events=self.rig.events,
            site=await SiteStore(self.db).ensure("cli-site"), version="test",
            storage=self.db.health,
            images=self.rig.images, deploy=self.rig.parts,
        )  # fmt: skip
        token = await auth.bootstrap_admin()
        assert token is not None
        self.token = token
        self.runner = web.AppRunner(build_api_app(ctx), shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.stack.aclose()
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer
        await self.db.close()

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def background(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` in the server's loop without waiting (the machines during --wait)."""
        asyncio.run_coroutine_threadsafe(work(), self.loop)

    def machine(self, **options: Any) -> Machine:
        return self.call(self.rig.ready_machine(**options))


@pytest.fixture
def box(tmp_path: Path) -> Iterator[RealEdgebox]:
    box = RealEdgebox(tmp_path)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def run(box: RealEdgebox, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setattr(deploy_cli, "POLL_S", 0.05)
    return make_invoker({"EDGEBOX_URL": box.url, "EDGEBOX_TOKEN": box.token})


def machine_when(
    box: RealEdgebox, machine: Machine, status: Status, work: Callable[[Any], Awaitable[None]]
) -> None:
    """A machine that waits to be `status`, then boots and does `work` with its agent."""

    async def wait_then_work() -> None:
        for _ in range(1000):
            if await box.rig.status(machine.system_id) is status:
                agent = box.rig.agent(machine)
                await agent.boot()
                await work(agent)
                return
            await asyncio.sleep(0.01)

    box.background(wait_then_work)


def deploys_ok(machine: Machine) -> Callable[[Any], Awaitable[None]]:
    async def work(agent: Any) -> None:
        await agent.deploy(log=b"all good\n")
        await agent.cloud_init(machine.system_id, "user-data")

    return work


async def deploy_fails(agent: Any) -> None:
    await agent.deploy(fail={"step": "write", "error": "EIO on vda"})


def test_allocate_by_constraints(run: Invoke, box: RealEdgebox) -> None:
    gpu = box.machine(cores=16, memory=65536, tags=("gpu",))
    box.machine(cores=64, memory=262144)
    result = run("allocate", "--min-cores", "8", "--min-memory", "32G", "--tag", "gpu")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:2] == [gpu.system_id, gpu.hostname]
    refused = run("allocate", "--count", "2", "--not-tag", "gpu", "--arch", "x86_64")
    assert refused.exit_code == 1
    assert "1 of 1 Ready machine(s) match" in refused.output
    assert run("allocate", "--min-memory", "lots").exit_code == 2


def test_deploy_one_machine_and_wait(run: Invoke, box: RealEdgebox, tmp_path: Path) -> None:
    machine = box.machine()
    (tmp_path / "id.pub").write_text(f"# laptop\n{KEY}\n")
    (tmp_path / "user-data").write_text(USER_DATA)
    machine_when(box, machine, Status.DEPLOYING, deploys_ok(machine))
    result = run(
        "deploy", machine.hostname, "--image", "tiny", "--ssh-key", str(tmp_path / "id.pub"),
        "--user-data", str(tmp_path / "user-data"), "--hostname", "web-7", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Deploying tiny on 1 machine(s); 0 refused." in result.output
    assert "1 succeeded" in result.output  # the plain progress line (not a terminal)
    after = box.call(box.rig.machines.get(machine.system_id))
    assert (after.status, after.hostname) == (Status.DEPLOYED, "web-7")
    agent = box.rig.agent(machine)
    assert box.call(agent.cloud_init(machine.system_id, "user-data")) == (200, USER_DATA)
    assert f'  - "{KEY}"' in box.call(agent.cloud_init(machine.system_id, "meta-data"))[1]
    shown = run("deployment", "web-7").output
    assert "state:     succeeded\n" in shown and "image:     tiny\n" in shown
    assert "--- agent log (last 9 of 9 bytes) ---\nall good\n" in shown
    view = json.loads(run("--json", "deployment", "web-7").output)
    assert view["ssh_keys"] == 1 and view["user_data_size"] == len(USER_DATA)


def test_a_rolling_deploy_that_stops_exits_1_with_the_reasons(
    run: Invoke, box: RealEdgebox
) -> None:
    machines = [box.machine(tags=("rack",)) for _ in range(3)]
    machine_when(box, machines[0], Status.DEPLOYING, deploy_fails)
    result = run("deploy", "--tag", "rack", "--image", "tiny", "--wave", "1",
                 "--max-failures", "1", "--wait")  # fmt: skip
    assert result.exit_code == 1
    label = f"{machines[0].system_id} ({machines[0].hostname})"
    assert f"failed: {label}: write: EIO on vda" in result.output
    assert "rollout stopped: 1 deployment(s) failed (the limit is 1)" in result.output
    assert f"skipped: {machines[2].system_id}" in result.output
    assert "1 failed, 2 skipped" in result.output


def test_release_with_erase_and_wait(run: Invoke, box: RealEdgebox) -> None:
    machine = box.machine()
    machine_when(box, machine, Status.DEPLOYING, deploys_ok(machine))
    assert run("deploy", machine.system_id, "--image", "tiny", "--wait").exit_code == 0

    async def erase(agent: Any) -> None:
        await agent.post("/machine/v1/erase/done", json={"ok": True, "disks": {"vda": "full"}})

    machine_when(box, machine, Status.DISK_ERASING, erase)
    result = run("release", machine.system_id, "--erase", "full", "--wait")
    assert result.exit_code == 0, result.output
    assert "Releasing 1 machine(s); 0 refused." in result.output
    assert box.call(box.rig.status(machine.system_id)) is Status.READY
    refused = run("release", machine.system_id)
    assert refused.exit_code == 1 and "cannot release a machine that is ready" in refused.output
