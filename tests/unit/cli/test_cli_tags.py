"""`edgebox tags ...` against the real API app and a real database, served on 127.0.0.1.

The fake API of the other CLI tests mimics the contract; tags are mostly server-side logic
(evaluation, refusals with a column), so these tests drive the real thing instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from fake_edgebox_api import Invoke, make_invoker

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.cli import tags as tags_module
from edgebox.services.auth_service import AuthService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.machine_service import MachineService
from edgebox.services.tag_service import TagService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.site_store import SiteStore
from edgebox.storage.tag_store import TagStore
from edgebox.storage.writer import Tx
from tests.conftest import FakeClock

T = TypeVar("T")
NVIDIA = {"gpus": [{"vendor": "nvidia"}], "memory": {"total_mib": 262144}}


class RealEdgebox:
    """The API app over a temporary database, in a thread with its own event loop (each CLI
    command runs its own `asyncio.run`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.token = ""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        clock = FakeClock()
        self.db = await Database.open(self.path, clock.now)
        self.writer = asyncio.create_task(self.db.writer.run())
        auth = AuthService(AuthStore(self.db), clock)
        self.machines = MachineService(MachineStore(self.db))
        ctx = ApiContext(
            machines=self.machines,
            auth=auth,
            events=EventService(EventStore(self.db), EventBus()),
            site=await SiteStore(self.db).ensure("cli-test"),
            version="test",
            storage=self.db.health,
            tags=TagService(TagStore(self.db)),
        )
        token = await auth.bootstrap_admin()
        assert token is not None
        self.token = token
        self.runner = web.AppRunner(build_api_app(ctx), shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _stop(self) -> None:
        await self.runner.cleanup()
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer
        await self.db.close()

    def machine(self, mac: str, inventory: dict[str, Any]) -> str:
        async def create() -> str:
            machine = await self.machines.create([mac], "test", hostname=f"n{mac[-2:]}")

            def job(tx: Tx) -> None:
                tx.conn.execute(
                    "INSERT INTO machine_inventory (machine_id, data, updated_at) VALUES (?, ?, ?)",
                    (machine.id, json.dumps(inventory), tx.now),
                )

            await self.db.write(job)
            return machine.system_id

        return self.run(create())


@pytest.fixture
def real(tmp_path: Path) -> Iterator[RealEdgebox]:
    server = RealEdgebox(tmp_path / "edgebox.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def run_cli(real: RealEdgebox) -> Invoke:
    return make_invoker({"EDGEBOX_URL": real.url, "EDGEBOX_TOKEN": real.token})


def test_create_list_show_an_automatic_tag(real: RealEdgebox, run_cli: Invoke) -> None:
    gpu = real.machine("52:54:00:00:00:01", NVIDIA)
    real.machine("52:54:00:00:00:02", {})

    result = run_cli(
        "tags", "create", "gpu", "--definition", 'gpu.vendor == "nvidia"', "--comment", "A100"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Created tag gpu (automatic, on 1 machines).\n"

    result = run_cli("tags", "create", "rack-1")
    assert result.stdout == "Created tag rack-1 (manual).\n"

    result = run_cli("tags", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "NAME    MACHINES  DEFINITION              COMMENT",
        'gpu     1         gpu.vendor == "nvidia"  A100',
        "rack-1  0         -                       -",
    ]

    result = run_cli("tags", "show", "gpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "name:        gpu",
        "kind:        automatic",
        'definition:  gpu.vendor == "nvidia"',
        "comment:     A100",
        "machines:    1",
        f"carried by:  {gpu} (n01)",
    ]

    result = run_cli("machines", "list", "--tag", "gpu", "--json")
    assert [m["system_id"] for m in json.loads(result.stdout)] == [gpu]

    result = run_cli("tags", "list", "--json")
    assert [t["name"] for t in json.loads(result.stdout)] == ["gpu", "rack-1"]


def test_a_refused_definition_is_shown_with_a_caret_at_the_column(run_cli: Invoke) -> None:
    result = run_cli("tags", "create", "big", "--definition", "memroy_gib >= 256")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: definition: column 1: unknown name 'memroy_gib'; did you mean 'memory_gib'?",
        "  memroy_gib >= 256",
        "  ^",
    ]
    result = run_cli("tags", "create", "big", "--definition", "memory_gib >=")
    assert result.stderr.splitlines()[1:] == ["  memory_gib >=", "               ^"]
    assert run_cli("tags", "list").stderr == "No tags.\n"


def test_update_delete_and_manual_tagging_refused(real: RealEdgebox, run_cli: Invoke) -> None:
    machine = real.machine("52:54:00:00:00:01", NVIDIA)
    assert run_cli("tags", "create", "big", "--definition", "memory_gib >= 512").exit_code == 0

    result = run_cli("tags", "update", "big", "--definition", "memory_gib >= 256")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Updated tag big (on 1 machines).\n"

    result = run_cli("machines", "tag", machine, "--remove", "big")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: tag 'big' is automatic")

    result = run_cli("tags", "update", "big")
    assert result.exit_code == 2

    result = run_cli("tags", "delete", "big")
    assert result.exit_code == 2 and "--yes" in result.stderr

    result = run_cli("tags", "delete", "big", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted tag big (carried by 1 machines).\n"
    assert json.loads(run_cli("machines", "show", machine, "--json").stdout)["tags"] == []
    result = run_cli("tags", "show", "big")
    assert result.exit_code == 1 and "no tag 'big'" in result.stderr


def test_delete_asks_on_a_terminal(run_cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("tags", "create", "old").exit_code == 0
    monkeypatch.setattr(tags_module, "stdin_is_interactive", lambda: True)

    result = run_cli("tags", "delete", "old", input="n\n")
    assert "Delete tag old (carried by 0 machines)? [y/N]" in result.output
    assert result.exit_code == 1
    assert run_cli("tags", "show", "old").exit_code == 0
