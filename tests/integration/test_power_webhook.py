"""The webhook power driver against a real aiohttp server that records what it is sent."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import (
    BmcConfig,
    FatalPowerError,
    PowerDriver,
    RetryablePowerError,
)
from edgebox.drivers.power.registry import driver_kind
from tests.lab.power_env import loopback_env
from tests.lab.redfish_server import serve_app
from tests.lab.tls_certs import make_ca, make_server_cert


@dataclass
class Receiver:
    """A webhook receiver: records each request; `answers` overrides a path's status and body."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    status_body: str = '{"power": "off"}'
    delay: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{name:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, dict(request.headers)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.path in self.answers:
            status, body = self.answers[request.path]
            return web.Response(status=status, text=body)
        if request.path.endswith("/status"):
            return web.Response(text=self.status_body)
        return web.Response(status=204)

    def calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _ in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    async with serve_app(hook.app()) as url:
        yield hook, url


@pytest.fixture
async def drivers() -> AsyncIterator[Callable[..., PowerDriver]]:
    made: list[PowerDriver] = []

    def create(
        address: str = "", user: str = "", password: str = "", **options: Any
    ) -> PowerDriver:
        driver = driver_kind("webhook").create(
            BmcConfig("webhook", address, user, password, options), loopback_env()
        )
        made.append(driver)
        return driver

    yield create
    for driver in made:
        await driver.close()


def all_urls(base: str) -> dict[str, str]:
    return {
        "on_url": f"{base}/pdu/on",
        "off_url": f"{base}/pdu/off",
        "soft_off_url": f"{base}/pdu/soft",
        "cycle_url": f"{base}/pdu/cycle",
        "status_url": f"{base}/pdu/status",
        "boot_network_url": f"{base}/pdu/boot-pxe",
    }


async def test_each_operation_calls_its_url_with_method_headers_and_basic_auth(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    driver = drivers(
        user="ops",
        password="pa:ss",
        headers='{"X-Api-Key": "k1", "X-Site": "lab; 2"}',
        **all_urls(url),
    )
    await driver.power_on()
    await driver.power_off()
    await driver.power_off(soft=True)
    await driver.power_cycle()
    await driver.set_boot_device(BootDevice.NETWORK)
    await driver.set_boot_device(BootDevice.DISK)  # no URL for it: nothing is called
    assert await driver.query() is PowerState.OFF

    assert hook.calls() == [
        ("POST", "/pdu/on"),
        ("POST", "/pdu/off"),
        ("POST", "/pdu/soft"),
        ("POST", "/pdu/cycle"),
        ("POST", "/pdu/boot-pxe"),
        ("GET", "/pdu/status"),
    ]
    expected_auth = "Basic " + base64.b64encode(b"ops:pa:ss").decode()
    for _, _, headers in hook.requests:
        assert headers["Authorization"] == expected_auth
        assert headers["X-Api-Key"] == "k1"
        assert headers["X-Site"] == "lab; 2"


async def test_status_body_is_matched_by_the_regexes(
    receiver: tuple[Receiver, str],
    drivers: Callable[..., PowerDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook, url = receiver
    driver = drivers(**all_urls(url))
    hook.status_body = '{"outlet": 3, "power": "ON"}'
    assert await driver.query() is PowerState.ON
    hook.status_body = "Outlet 3 is off"
    assert await driver.query() is PowerState.OFF

    custom = drivers(
        **all_urls(url), status_on_regex=r'"state":\s*1\b', status_off_regex=r'"state":\s*0\b'
    )
    hook.status_body = '{"state": 1}'
    assert await custom.query() is PowerState.ON
    hook.status_body = '{"state": 0}'
    assert await custom.query() is PowerState.OFF

    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power.webhook")
    hook.status_body = '{"state": "rebooting"}'
    assert await custom.query() is PowerState.UNKNOWN
    assert "rebooting" in caplog.text
    hook.status_body = "was on, now off"  # both match the default patterns: ambiguous
    assert await driver.query() is PowerState.UNKNOWN


async def test_relative_urls_join_the_address_and_the_method_option_applies_to_actions(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    driver = drivers(
        address=url + "/api/",
        on_url="outlets/7/on",
        off_url="/outlets/7/off",
        status_url="outlets/7/status",
        method="PUT",
        auth="bearer",
        password="tok-123",
    )
    await driver.power_on()
    await driver.power_off()
    await driver.query()
    assert hook.calls() == [
        ("PUT", "/api/outlets/7/on"),
        ("PUT", "/outlets/7/off"),
        ("GET", "/api/outlets/7/status"),
    ]
    assert {h["Authorization"] for _, _, h in hook.requests} == {"Bearer tok-123"}

    hook.answers["/api/outlets/7/on"] = (401, "token expired")
    with pytest.raises(
        FatalPowerError, match=r"rejected the bearer token \(HTTP 401 Unauthorized\)"
    ):
        await driver.power_on()


async def test_cycle_without_a_cycle_url_is_off_pause_on(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    driver = drivers(on_url=f"{url}/on", off_url=f"{url}/off", cycle_delay=1)
    started = time.monotonic()
    await driver.power_cycle()
    assert time.monotonic() - started >= 1.0
    assert hook.calls() == [("POST", "/off"), ("POST", "/on")]


async def test_missing_optional_urls(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    driver = drivers(on_url=f"{url}/on", off_url=f"{url}/off")
    with pytest.raises(FatalPowerError, match="this webhook has no boot_network URL"):
        await driver.set_boot_device(BootDevice.NETWORK)
    with pytest.raises(FatalPowerError, match="this webhook has no soft_off URL"):
        await driver.power_off(soft=True)
    await driver.set_boot_device(BootDevice.DISK, once=False)
    assert await driver.query() is PowerState.UNKNOWN
    assert hook.requests == []


async def test_server_errors_are_retryable(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    driver = drivers(**all_urls(url))
    hook.answers["/pdu/on"] = (500, "relay board busy")
    with pytest.raises(RetryablePowerError) as caught:
        await driver.power_on()
    assert "HTTP 500 Internal Server Error, try again later" in str(caught.value)
    assert "relay board busy" not in str(caught.value)  # bodies go to the debug log only
    assert str(caught.value).startswith(f"BMC {url}:")  # no address: on_url's origin
    del hook.answers["/pdu/on"]
    await driver.power_on()


async def test_rejected_credentials_are_fatal(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    hook.answers["/pdu/off"] = (401, "")
    hook.answers["/pdu/soft"] = (403, "")
    driver = drivers(user="ops", password="bad", **all_urls(url))
    with pytest.raises(
        FatalPowerError, match=r"rejected the credentials for user 'ops' \(HTTP 401 Unauthorized\)"
    ):
        await driver.power_off()
    with pytest.raises(FatalPowerError, match="HTTP 403"):
        await driver.power_off(soft=True)


async def test_client_errors_are_fatal_with_the_start_of_the_body_in_the_debug_log(
    receiver: tuple[Receiver, str],
    drivers: Callable[..., PowerDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power")
    hook, url = receiver
    hook.answers["/pdu/cycle"] = (422, "outlet 7 does not exist. " + "x" * 400)
    with pytest.raises(FatalPowerError) as caught:
        await drivers(**all_urls(url)).power_cycle()
    message = str(caught.value)
    assert message.endswith("cycle: POST /pdu/cycle: refused (HTTP 422 Unprocessable Entity)")
    assert "outlet 7" not in message  # an error's message ends up in events: no body there
    assert "outlet 7 does not exist." in caplog.text
    assert "x" * 170 in caplog.text
    assert "x" * 201 not in caplog.text


async def test_timeout_is_retryable(
    receiver: tuple[Receiver, str], drivers: Callable[..., PowerDriver]
) -> None:
    hook, url = receiver
    hook.delay = 3.0
    with pytest.raises(RetryablePowerError, match="no answer within 1 s"):
        await drivers(timeout=1, **all_urls(url)).power_on()


async def test_tls_verification_is_on_by_default(
    tmp_path: Path, drivers: Callable[..., PowerDriver]
) -> None:
    ca = make_ca(tmp_path)
    server = make_server_cert(tmp_path, ca)
    hook = Receiver()
    async with serve_app(hook.app(), server.server_context()) as url:
        with pytest.raises(FatalPowerError, match="certificate verification failed"):
            await drivers(**all_urls(url)).power_on()
        await drivers(verify_tls=False, **all_urls(url)).power_on()
        await drivers(ca_file=str(ca.cert_path), **all_urls(url)).power_on()
    assert hook.calls() == [("POST", "/pdu/on"), ("POST", "/pdu/on")]


def test_configuration_mistakes_are_fatal_at_creation() -> None:
    create = driver_kind("webhook").create
    with pytest.raises(FatalPowerError, match="off_url: required"):
        create(BmcConfig("webhook", options={"on_url": "http://127.0.0.1:9/on"}), loopback_env())
    with pytest.raises(FatalPowerError, match="not a valid header name"):
        create(
            BmcConfig(
                "webhook",
                options={
                    "on_url": "http://127.0.0.1:9/on",
                    "off_url": "http://127.0.0.1:9/off",
                    "headers": '{"Bad Name": "x"}',
                },
            ),
            loopback_env(),
        )
