"""The power queue in a real `edgebox serve`, driving a webhook BMC on loopback.

- kill -9 while an operation is in flight: after the restart the queue runs it again and it
  ends done, with an event saying it was resumed.
- the CLI sets the BMC, powers the machine on with a one-time network boot, and shows it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.daemon import Daemon, free_port, start, write_config
from tests.lab.power_env import LOOPBACK_ALLOWED


@dataclass
class Outlet:
    """A webhook receiver that powers a pretend machine; it can hold a request to keep an
    operation in flight."""

    port: int = field(default_factory=free_port)
    state: str = "off"
    calls: list[str] = field(default_factory=list)
    hold_next_on: bool = False
    on_arrived: threading.Event = field(default_factory=threading.Event)
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.calls.append(name)
        if name == "status":
            return web.Response(text=f"power is {self.state}")
        if name == "on":
            self.on_arrived.set()
            if self.hold_next_on:
                self.hold_next_on = False
                await asyncio.sleep(120)  # edgebox dies meanwhile
            self.state = "on"
        elif name == "off":
            self.state = "off"
        return web.Response(text="ok")


@pytest.fixture
def outlet() -> Iterator[Outlet]:
    box = Outlet()
    started = threading.Event()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        box.loop = loop
        app = web.Application()
        app.router.add_route("*", "/{name}", box.handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", box.port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield box
    finally:
        assert box.loop is not None
        box.loop.call_soon_threadsafe(box.loop.stop)
        thread.join(10)


def webhook_bmc(outlet: Outlet) -> dict[str, Any]:
    return {
        "driver": "webhook",
        "address": outlet.base,
        "options": {
            "on_url": "/on",
            "off_url": "/off",
            "status_url": "/status",
            "boot_network_url": "/boot-network",
            "status_on_regex": "power is on",
            "status_off_regex": "power is off",
        },
    }


def api(daemon: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async def call() -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {daemon_token(daemon)}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{daemon.api_url}/api/v1{path}", json=body, headers=headers
            ) as resp,
        ):
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    return asyncio.run(call())


_TOKENS: dict[Path, str] = {}


def daemon_token(daemon: Daemon) -> str:
    token = daemon.admin_token or _TOKENS.get(daemon.config)
    assert token, daemon.stdout
    _TOKENS[daemon.config] = token
    return token


def wait_for(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_kill_9_mid_operation_then_the_queue_resumes_it(tmp_path: Path, outlet: Outlet) -> None:
    # The webhook receiver is on 127.0.0.1: loopback targets are refused unless allowed.
    config = write_config(
        tmp_path,
        power={"poll_interval": 0, "call_timeout": 300, "allow_targets": list(LOOPBACK_ALLOWED)},
    )
    daemon = start(config, name="first")
    try:
        daemon_token(daemon)
        status, machine = api(daemon, "POST", "/machines", {"mac": "52:54:00:20:00:01"})
        assert status == 201
        sid = machine["system_id"]
        assert api(daemon, "PUT", f"/machines/{sid}/bmc", webhook_bmc(outlet))[0] == 200
        outlet.hold_next_on = True
        status, op = api(daemon, "POST", f"/machines/{sid}/power", {"op": "on"})
        assert status == 202
        assert outlet.on_arrived.wait(20), "the webhook never got the power-on"
        _, ops = api(daemon, "GET", f"/power/ops?id={op['id']}")
        assert ops["items"][0]["state"] == "running"
        daemon.stop(signal.SIGKILL)
    finally:
        if daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)

    outlet.on_arrived.clear()
    daemon = start(config, name="second")
    try:
        assert outlet.on_arrived.wait(20), "the resumed power-on never reached the webhook"

        def finished() -> Any:
            item = api(daemon, "GET", f"/power/ops?id={op['id']}")[1]["items"][0]
            return item if item["state"] in ("done", "failed") else None

        item = wait_for(finished, "the resumed operation to end")
        assert item["state"] == "done" and item["attempts"] == 2, item
        assert outlet.calls.count("on") == 2
        _, shown = api(daemon, "GET", f"/machines/{sid}")
        assert shown["power_state"] == "on"
        _, events = api(daemon, "GET", f"/events?machine={sid}&limit=100")
        types = [e["type"] for e in events["items"]]
        assert "power.resumed" in types and types.index("power.resumed") < types.index("power.done")
    finally:
        daemon.stop()


def edgebox_cli(daemon: Daemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgebox", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EDGEBOX_URL": daemon.api_url, "EDGEBOX_TOKEN": daemon_token(daemon)},
        check=False,
    )


@pytest.mark.slow
def test_the_cli_sets_the_bmc_powers_on_from_the_network_and_shows_it(
    tmp_path: Path, outlet: Outlet
) -> None:
    config = write_config(
        tmp_path, power={"poll_interval": 0, "allow_targets": list(LOOPBACK_ALLOWED)}
    )
    daemon = start(config)
    try:
        daemon_token(daemon)
        status, machine = api(daemon, "POST", "/machines", {"mac": "52:54:00:20:00:02"})
        assert status == 201
        sid = machine["system_id"]
        bmc = webhook_bmc(outlet)
        options = [f"--option={k}={v}" for k, v in bmc["options"].items()]
        done = edgebox_cli(
            daemon, "power", "set", sid, "--driver", "webhook", "--address", outlet.base,
            "--user", "ops", "--password-stdin", *options, stdin="pw-from-stdin\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "password set" in done.stdout and "pw-from-stdin" not in done.stdout
        done = edgebox_cli(daemon, "power", "test", sid)
        assert done.returncode == 0 and "power is off" in done.stdout, done.stderr
        done = edgebox_cli(daemon, "power", "on", "--network", sid)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "done" in done.stdout
        assert outlet.calls[-3:] == ["boot-network", "status", "on"]
        done = edgebox_cli(daemon, "power", "show", sid)
        assert done.returncode == 0 and "on-network" in done.stdout and "done" in done.stdout
        # A machine without a BMC is refused by name, and the command fails.
        api(daemon, "POST", "/machines", {"mac": "52:54:00:20:00:03", "hostname": "bare"})
        done = edgebox_cli(daemon, "power", "off", "bare", sid)
        assert done.returncode == 1
        assert "has no BMC" in done.stdout and "1 of 2 machines failed" in done.stderr
    finally:
        daemon.stop()
