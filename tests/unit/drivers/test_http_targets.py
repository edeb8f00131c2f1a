"""What the HTTP power drivers send where: refused targets get no request, a redirect is not
followed (it would carry the credentials), and what a server says in an error body stays out
of the error. Against small aiohttp servers on 127.0.0.1, opened by the allow-list."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from edgebox.domain.power_targets import parse_target_policy
from edgebox.drivers.power.base import BmcConfig, DriverEnv, FatalPowerError, PowerDriver
from edgebox.drivers.power.registry import driver_kind
from edgebox.drivers.power.targets import TargetGuard
from edgebox.drivers.power.worker_slots import WorkerSlots
from tests.lab.redfish_server import serve_app

LOOPBACK_ALLOWED = DriverEnv(TargetGuard(parse_target_policy(["127.0.0.0/8"])), WorkerSlots(4))
STRICT = DriverEnv.strict()


@dataclass
class Listener:
    """Records every request; `routes` maps a path to (status, body, headers)."""

    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    routes: dict[str, tuple[int, str, dict[str, str]]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path, dict(request.headers)))
        status, body, headers = self.routes.get(request.path, (204, "", {}))
        return web.Response(status=status, text=body, headers=headers)


@pytest.fixture
async def listener() -> AsyncIterator[tuple[Listener, str]]:
    hook = Listener()
    async with serve_app(hook.app()) as url:
        yield hook, url


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[Listener, str]]:
    hook = Listener()
    async with serve_app(hook.app()) as url:
        yield hook, url


@pytest.fixture
async def made() -> AsyncIterator[list[PowerDriver]]:
    drivers: list[PowerDriver] = []
    yield drivers
    for driver in drivers:
        await driver.close()


def webhook(
    made: list[PowerDriver], env: DriverEnv, on_url: str, password: str = "", **options: str
) -> PowerDriver:
    config = BmcConfig(
        "webhook", "", "ops" if password else "", password,
        {"on_url": on_url, "off_url": on_url, **options},
    )  # fmt: skip
    driver = driver_kind("webhook").create(config, env)
    made.append(driver)
    return driver


async def test_a_loopback_target_is_refused_by_default_and_gets_nothing(
    listener: tuple[Listener, str], made: list[PowerDriver]
) -> None:
    hook, url = listener
    with pytest.raises(FatalPowerError) as caught:
        await webhook(made, STRICT, f"{url}/on", "admin-pw").power_on()
    message = str(caught.value)
    assert "127.0.0.1 is a loopback address" in message
    assert "add 127.0.0.1/32 (or its network) to power.allow_targets" in message
    assert hook.seen == []
    await webhook(made, LOOPBACK_ALLOWED, f"{url}/on", "admin-pw").power_on()
    assert [(m, p) for m, p, _ in hook.seen] == [("POST", "/on")]


async def test_a_name_is_checked_at_call_time_by_what_it_resolves_to(
    listener: tuple[Listener, str], made: list[PowerDriver]
) -> None:
    hook, url = listener
    port = url.rsplit(":", 1)[1]
    with pytest.raises(FatalPowerError, match="localhost resolves to an address that is refused"):
        await webhook(made, STRICT, f"http://localhost:{port}/on").power_on()
    assert hook.seen == []
    await webhook(made, LOOPBACK_ALLOWED, f"http://localhost:{port}/on").power_on()
    assert len(hook.seen) == 1


async def test_a_redirect_is_not_followed_and_carries_nothing_elsewhere(
    listener: tuple[Listener, str],
    elsewhere: tuple[Listener, str],
    made: list[PowerDriver],
) -> None:
    hook, url = listener
    thief, thief_url = elsewhere
    hook.routes["/on"] = (302, "", {"Location": f"{thief_url}/collect?x=1"})
    driver = webhook(
        made, LOOPBACK_ALLOWED, f"{url}/on", "admin-pw", headers='{"X-Api-Key": "k-123"}'
    )
    with pytest.raises(FatalPowerError) as caught:
        await driver.power_on()
    assert f"redirected (HTTP 302) to {thief_url};" in str(caught.value)
    assert "set the address or URL to where it points" in str(caught.value)
    assert thief.seen == []
    assert hook.seen[0][2]["X-Api-Key"] == "k-123"  # sent where it was configured to go


async def test_an_error_body_goes_to_the_debug_log_not_into_the_error(
    listener: tuple[Listener, str], made: list[PowerDriver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power")
    hook, url = listener
    hook.routes["/on"] = (422, "db_password=hunter2 (an internal page)", {})
    with pytest.raises(FatalPowerError) as caught:
        await webhook(made, LOOPBACK_ALLOWED, f"{url}/on?token=t0k").power_on()
    assert str(caught.value) == (
        f"BMC {url}: on: POST /on: refused (HTTP 422 Unprocessable Entity)"
    )
    assert "hunter2" in caplog.text


def redfish_app(action_target: str) -> web.Application:
    documents = {
        "/redfish/v1": {"Systems": {"@odata.id": "/redfish/v1/Systems"}},
        "/redfish/v1/Systems": {"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]},
        "/redfish/v1/Systems/1": {
            "@odata.id": "/redfish/v1/Systems/1",
            "PowerState": "Off",
            "Actions": {"#ComputerSystem.Reset": {"target": action_target}},
        },
    }

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(documents[request.path.rstrip("/")])

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    return app


async def test_redfish_keeps_the_credentials_with_the_bmc(
    elsewhere: tuple[Listener, str], made: list[PowerDriver]
) -> None:
    thief, thief_url = elsewhere
    async with serve_app(redfish_app(f"{thief_url}/reset")) as url:
        config = BmcConfig("redfish", url, "admin", "admin-pw")
        driver = driver_kind("redfish").create(config, LOOPBACK_ALLOWED)
        made.append(driver)
        with pytest.raises(FatalPowerError) as caught:
            await driver.power_on()
    assert f"the BMC points to {thief_url}, another host than its own" in str(caught.value)
    assert thief.seen == []
