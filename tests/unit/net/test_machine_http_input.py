"""Bad input on the machine-facing port (no credential needed to send it): a malformed Range, a
JSON body nested too deep or with a number SQLite cannot hold, a wrong method, a body past the
limit, a handler that fails. Each is a 4xx (JSON under /machine/) or a JSON 500, never
aiohttp's plain-text 500 page."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.domain.settings import BootSettings
from edgebox.net.machine_http import BOOT, build_machine_app
from edgebox.services.boot_resources import BootResources
from edgebox.services.boot_service import BootService
from edgebox.services.loaders import check_loaders
from edgebox.services.script_yaml import MAX_NODES
from edgebox.storage.boot_store import BootStore
from edgebox.storage.database import Database
from tests.conftest import FakeClock
from tests.unit.net.test_script_http import Machine, commissioned_machine, make_build
from tests.unit.services.commissioning_rig import make_rig
from tests.unit.services.test_script_yaml import laughs

DEEP = b"[" * 1000 + b"]" * 1000


@pytest.fixture
async def port(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Machine]:
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


@pytest.mark.parametrize(
    "header",
    ["bytes=abc", "bytes=5-1", "bytes=-", "pages=0-1", f"bytes={2**64}-", "bytes=" + "9" * 5000],
)
async def test_a_malformed_range_is_416_not_500(port: Machine, tmp_path: Path, header: str) -> None:
    digest = next(p.name for p in (tmp_path / "resources").iterdir() if len(p.name) == 64)
    url = f"/boot-resources/{digest}/vmlinuz?mac=52:54:00:00:00:0a"
    resp = await port.client.get(url, headers={"Range": header})
    assert resp.status == 416, await resp.text()
    assert resp.headers["Content-Range"] == "bytes */7"  # len(b"vmlinuz")
    good = await port.client.get(url, headers={"Range": "bytes=1-3"})
    assert good.status == 206 and await good.read() == b"mli"


async def test_agent_json_nested_too_deep_is_a_json_400(port: Machine) -> None:
    await port.boot()
    status, answer = await port.post("/machine/v1/status", data=DEEP)
    assert (status, answer) == (
        400,
        {"error": "bad_request", "message": "the body is nested deeper than 64 levels"},
    )


async def test_agent_numbers_must_fit(port: Machine) -> None:
    await commissioned_machine(port)
    [line, *_] = await port.plan()
    assert (await port.post(f"/machine/v1/results/{line[0]}/start"))[0] == 200
    for raw, message in [
        (b'{"exit_code": 1180591620717411303424}', "is outside"),
        (b'{"runtime": NaN}', "NaN is not a JSON number"),
        (b'{"runtime": 1e999}', "is too large"),
        (DEEP, "nested deeper than 64 levels"),
    ]:
        status, answer = await port.post(f"/machine/v1/results/{line[0]}/done", data=raw)
        assert status == 400 and answer["error"] == "bad_request", raw[:40]
        assert message in answer["message"]


async def test_a_wrong_method_under_machine_is_a_json_405_with_allow(port: Machine) -> None:
    resp = await port.client.get("/machine/v1/enlist")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert await resp.json() == {
        "error": "method_not_allowed",
        "message": "GET is not allowed here (allowed: POST)",
    }


async def test_a_body_past_the_limit_is_a_json_413(port: Machine) -> None:
    await port.boot()
    status, answer = await port.post("/machine/v1/status", data=b" " * (5 * 1024 * 1024))
    assert (status, answer) == (
        413,
        {"error": "too_large", "message": "the request body is too large"},
    )


async def test_an_unexpected_failure_is_a_json_500_pointing_at_the_log(
    port: Machine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await port.boot()
    boot = port.client.app[BOOT]

    async def explode(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(boot, "agent_status", explode)
    with caplog.at_level(logging.ERROR):
        status, answer = await port.post("/machine/v1/status", json={"state": "x"})
    assert status == 500 and answer["error"] == "internal"
    assert "secret" not in json.dumps(answer)
    ref = answer["message"].rsplit("ref=", 1)[1]
    assert any(ref in r.getMessage() for r in caplog.records)


async def test_the_ipxe_script_keeps_its_text_errors(port: Machine) -> None:
    resp = await port.client.get("/boot/ipxe?mac=nonsense")
    assert resp.status == 400
    assert (await resp.text()).startswith("#!ipxe\necho edgebox: bad ?mac=")


async def test_a_result_file_bomb_fails_its_result_not_the_loop(port: Machine) -> None:
    system_id = await commissioned_machine(port)
    disk = (await port.plan())[2][0]
    assert (await port.post(f"/machine/v1/results/{disk}/start"))[0] == 200
    started = time.monotonic()
    status, answer = await port.post(f"/machine/v1/results/{disk}/result", data=laughs(9))
    assert (status, answer) == (200, {"ok": True})
    assert time.monotonic() - started < 1.0
    status, answer = await port.post(
        f"/machine/v1/results/{disk}/done", json={"exit_code": 0, "runtime": 1.0}
    )
    assert (status, answer) == (200, {"ok": True})
    result = (await port.rig.service.result(system_id, int(disk))).result
    assert result.status.value == "failed"
    assert result.note == (
        f"the result file is not valid: more than {MAX_NODES} values once its aliases are expanded"
    )
