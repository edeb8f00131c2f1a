"""`edgebox scripts`, `commission`, `test`, `results` and `commission-summary` against the real
API app (in a thread with its own loop and a real temporary database), with a simulated agent
in the server's loop doing the machine's part."""

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
from edgebox.cli import commissioning as commissioning_cli
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine
from edgebox.services.auth_service import AuthService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.unit.services.commissioning_rig import FakeAgent, Rig, make_rig

T = TypeVar("T")

FAN_CHECK = """#!/bin/sh
# --- edgebox script ---
# name: fan-check
# title: Fans spin
# type: testing
# timeout: 90s
# parameters:
#   min_rpm: {type: int, default: 1000, min: 1}
# results:
#   rpm: {title: Slowest fan, unit: rpm}
# --- end ---
echo fans
"""


class RealEdgebox:
    """The API of a real edgebox (services, database) served from a thread."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.token = ""

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    def call(self, work: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)  # type: ignore[arg-type]

    async def _start(self) -> None:
        clock = FakeClock()
        self.db = await Database.open(self.data / "edgebox.db", clock.now)
        self.writer = asyncio.create_task(self.db.writer.run())
        self.rig: Rig = await make_rig(self.db, clock)
        auth = AuthService(AuthStore(self.db), clock)
        ctx = ApiContext(
            machines=self.rig.machines,
            auth=auth,
            events=self.rig.events,
            site=await SiteStore(self.db).ensure("cli-site"),
            version="test",
            storage=self.db.health,
            scripts=self.rig.scripts,
            commissioning=self.rig.service,
        )
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
        """Run `work` in the server's loop without waiting (the agent during --wait)."""
        asyncio.run_coroutine_threadsafe(work(), self.loop)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[RealEdgebox]:
    box = RealEdgebox(tmp_path)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def run(box: RealEdgebox, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setattr(commissioning_cli, "POLL_S", 0.05)
    return make_invoker({"EDGEBOX_URL": box.url, "EDGEBOX_TOKEN": box.token})


def agent_when_busy(box: RealEdgebox, machine: Machine, **overrides: dict[str, Any]) -> None:
    """An agent that waits for the machine to be commissioning or testing, then runs its plan."""

    async def work() -> None:
        for _ in range(400):
            status = (await box.rig.machines.get(machine.system_id)).status
            if status in (Status.COMMISSIONING, Status.TESTING):
                purpose = "commission" if status is Status.COMMISSIONING else "test"
                await FakeAgent(box.rig.agent, machine, purpose).run_plan(overrides)
                return
            await asyncio.sleep(0.02)

    box.background(work)


def test_scripts_upload_list_show_delete(run: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "fan-check.sh"
    path.write_text(FAN_CHECK)
    result = run("scripts", "upload", str(path))
    assert result.exit_code == 0, result.output
    assert result.output == "Uploaded fan-check version 1 (testing).\n"
    listed = run("scripts", "list", "--type", "testing").output
    row = next(line for line in listed.splitlines() if line.startswith("fan-check"))
    assert row.split()[:6] == ["fan-check", "1", "testing", "node", "1m30s", "disabled"]
    assert "disk-check" in listed and "edgebox-inventory" not in listed
    shown = run("scripts", "show", "fan-check").output
    assert "parameters:   min_rpm int default 1000 1..-" in shown
    assert "results:      rpm: Slowest fan [rpm]" in shown
    assert run("scripts", "show", "fan-check", "--content").output == FAN_CHECK
    path.write_text(FAN_CHECK.replace("timeout: 90s", "timeout: soon"))
    bad = run("scripts", "upload", str(path))
    assert bad.exit_code == 1
    assert "line 6: timeout: expected seconds or a duration like 5m, got 'soon'" in bad.output
    assert run("scripts", "delete", "fan-check", "--yes").exit_code == 0
    refused = run("scripts", "delete", "edgebox-inventory", "--yes")
    assert refused.exit_code == 1 and "cannot be deleted" in refused.output


def test_commission_and_wait_until_ready(run: Invoke, box: RealEdgebox) -> None:
    machine = box.call(box.rig.enlist())
    agent_when_busy(box, machine)
    result = run("commission", machine.hostname, "--tests", "disk-check", "--wait")
    assert result.exit_code == 0, result.output
    assert "Started commissioning of 1 machine(s); 0 refused." in result.output
    assert "1 ready" in result.output  # the plain progress line (not a terminal)
    table = run("results", machine.system_id).output
    assert "run 1: commissioning, passed, by admin" in table
    assert [line.split()[1:4] for line in table.splitlines()[2:]] == [
        ["edgebox-inventory", "-", "passed"],
        ["firmware-info", "-", "passed"],
        ["disk-check", "vda", "passed"],
        ["disk-check", "vdb", "passed"],
    ]


def test_a_failed_test_exits_1_and_shows_why(run: Invoke, box: RealEdgebox) -> None:
    machine = box.call(box.rig.enlist())
    box.call(box.rig.set_status(machine.system_id, "ready"))
    agent_when_busy(box, machine, **{"cpu-burn": {"exit_code": 2, "stderr": b"core 3 wrong\n"}})
    result = run("test", "--status", "ready", "--tests", "cpu-burn", "--wait")
    assert result.exit_code == 1
    assert f"failed_testing: {machine.system_id} ({machine.hostname})" in result.output
    output = run("results", machine.hostname, "--script", "cpu-burn", "--output").output
    assert "cpu-burn  -       failed  2" in output
    assert "--- cpu-burn" in output and "stderr ---\ncore 3 wrong\n" in output
    summary = run("commission-summary").output
    assert "failed_testing  1" in summary
    assert "cpu-burn  1         1       0         0" in summary
    as_json = json.loads(run("--json", "commission-summary").output)
    assert as_json["failures"] == [{"script": "cpu-burn", "machines": 1, "failed": 1}]


def test_refusals_and_usage(run: Invoke, box: RealEdgebox) -> None:
    machine = box.call(box.rig.enlist())
    usage = run("commission")
    assert usage.exit_code == 2 and "name machines (IDs), give a filter" in usage.output
    assert "or say --all" in usage.output
    refused = run("test", machine.system_id, "nosuch")
    assert refused.exit_code == 1
    assert "cannot test a machine that is new" in refused.output
    assert "refused: nosuch: no machine 'nosuch'" in refused.output
    started = run("--json", "commission", machine.system_id, "--tests", "")
    assert started.exit_code == 0
    answer = json.loads(started.output)
    assert answer["accepted"] == 1 and answer["items"][0]["status"] == "commissioning"
    pending = run("results", machine.system_id).output
    assert "edgebox-inventory  -       pending" in pending


def test_all_means_every_machine_the_action_applies_to(run: Invoke, box: RealEdgebox) -> None:
    new = box.call(box.rig.enlist())
    started = run("--json", "commission", "--all", "--tests", "")
    assert started.exit_code == 0, started.output
    answer = json.loads(started.output)
    assert [i["system_id"] for i in answer["items"] if i["accepted"]] == [new.system_id]
    # Nothing is Ready or New any more: a second --all finds nothing to commission.
    again = run("commission", "--all")
    assert again.exit_code == 1 and "Started commissioning of 0 machine(s)" in again.output


def test_script_parameters_for_one_run(run: Invoke, box: RealEdgebox) -> None:
    machine = box.call(box.rig.enlist())
    bad = run("commission", machine.system_id, "--param", "disk-check.passes")
    assert bad.exit_code == 2 and "expected SCRIPT.PARAMETER=VALUE" in bad.output
    refused = run("commission", machine.system_id, "--tests", "disk-check",
                  "--param", "disk-check.passes=0")  # fmt: skip
    assert refused.exit_code == 1 and "0 is outside 1.." in refused.output
    started = run("commission", machine.system_id, "--tests", "disk-check",
                  "--param", "disk-check.passes=5")  # fmt: skip
    assert started.exit_code == 0, started.output
    results = json.loads(run("--json", "results", machine.system_id).output)
    passes = {r["script"]: r["parameters"].get("passes") for r in results["results"]}
    assert passes["disk-check"] == 5


def test_param_values_are_json_scalars_or_text() -> None:
    parsed = commissioning_cli.parse_params([
        "memory-test.fraction=0.5", "a.b.flag=true", "x.label=rack 3", "x.quoted=\"123\"",
        "x.obj={\"a\": 1}", "x.empty=",
    ])  # fmt: skip
    assert parsed == {
        "memory-test": {"fraction": 0.5},
        "a.b": {"flag": True},
        "x": {"label": "rack 3", "quoted": "123", "obj": '{"a": 1}', "empty": ""},
    }
