"""The Redfish power driver against a real HTTP(S) server: our small Redfish BMC
(tests/lab/redfish_server.py) for behaviour and failures, and sushy-tools' emulator for
interoperability with a Redfish implementation we did not write."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import (
    BmcConfig,
    FatalPowerError,
    PowerDriver,
    PowerError,
    RetryablePowerError,
)
from edgebox.drivers.power.registry import driver_kind
from tests.lab.power_env import loopback_env
from tests.lab.redfish_server import RedfishBmc, serve_app, serve_redfish
from tests.lab.sushy import SushyEmulator
from tests.lab.tls_certs import make_ca, make_server_cert

Factory = Callable[..., PowerDriver]


def make_config(
    base_url: str, user: str = "admin", password: str = "secret", **options: Any
) -> BmcConfig:
    return BmcConfig("redfish", base_url, user, password, options)


@pytest.fixture
async def drivers() -> AsyncIterator[Callable[[BmcConfig], PowerDriver]]:
    """Creates drivers through the registry and closes them all at the end."""
    made: list[PowerDriver] = []

    def create(config: BmcConfig) -> PowerDriver:
        driver = driver_kind("redfish").create(config, loopback_env())
        made.append(driver)
        return driver

    yield create
    for driver in made:
        await driver.close()


@pytest.fixture
async def bmc_url() -> AsyncIterator[tuple[RedfishBmc, str]]:
    bmc = RedfishBmc()
    async with serve_redfish(bmc) as url:
        yield bmc, url


async def test_power_operations_map_to_reset_types_and_skip_no_ops(
    bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    bmc, url = bmc_url
    driver = drivers(make_config(url))

    assert await driver.query() is PowerState.OFF
    await driver.power_cycle()  # off: a cycle is an On
    await driver.power_on()  # already on: nothing sent (the server would answer 409)
    await driver.power_cycle()
    await driver.power_off(soft=True)
    await driver.power_off()  # already off
    await driver.power_on()
    await driver.power_off()

    assert bmc.resets() == ["On", "ForceRestart", "GracefulShutdown", "On", "ForceOff"]
    assert await driver.query() is PowerState.OFF
    # One discovery (root + collection), then only the system and its action.
    paths = [r.path for r in bmc.requests]
    assert paths.count("/redfish/v1") == 1
    assert paths.count("/redfish/v1/Systems") == 1


async def test_transitional_states(
    bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    bmc, url = bmc_url
    driver = drivers(make_config(url))
    system = bmc.systems["1"]

    system.power_state = "PoweringOn"
    assert await driver.query() is PowerState.ON
    await driver.power_on()  # on its way: nothing sent

    system.power_state = "PoweringOff"
    assert await driver.query() is PowerState.OFF
    await driver.power_off(soft=True)  # a shutdown is under way: nothing sent
    await driver.power_off()  # a hard off still goes through
    assert bmc.resets() == ["ForceOff"]


async def test_boot_override_patch_once_and_continuous(
    bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    bmc, url = bmc_url
    driver = drivers(make_config(url))

    await driver.set_boot_device(BootDevice.NETWORK)
    system = bmc.systems["1"]
    assert (system.boot_target, system.boot_enabled) == ("Pxe", "Once")
    patches = [r for r in bmc.requests if r.method == "PATCH"]
    assert patches[-1].path == "/redfish/v1/Systems/1"
    assert patches[-1].body == {
        "Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}
    }

    await driver.set_boot_device(BootDevice.DISK, once=False)
    assert (system.boot_target, system.boot_enabled) == ("Hdd", "Continuous")


async def test_patch_is_repeated_with_the_etag_when_the_bmc_demands_if_match(
    drivers: Callable[[BmcConfig], PowerDriver],
) -> None:
    bmc = RedfishBmc(require_if_match=True)
    async with serve_redfish(bmc) as url:
        await drivers(make_config(url)).set_boot_device(BootDevice.NETWORK)
    patches = [r for r in bmc.requests if r.method == "PATCH"]
    assert len(patches) == 2
    assert "If-Match" not in patches[0].headers
    assert patches[1].headers["If-Match"].startswith('"')
    assert bmc.systems["1"].boot_target == "Pxe"


async def test_system_choice_among_several(drivers: Callable[[BmcConfig], PowerDriver]) -> None:
    bmc = RedfishBmc(systems=("Blade1", "Blade2"))
    async with serve_redfish(bmc) as url:
        with pytest.raises(FatalPowerError) as caught:
            await drivers(make_config(url)).query()
        assert "2 systems (Blade1, Blade2)" in str(caught.value)
        assert "system_id" in str(caught.value)

        await drivers(make_config(url, system_id="Blade2")).power_on()
        await drivers(make_config(url, system_id="/redfish/v1/Systems/Blade1")).power_on()
        assert bmc.resets("Blade1") == bmc.resets("Blade2") == ["On"]

        with pytest.raises(FatalPowerError, match=r"no system 'Blade9'.*Blade1"):
            await drivers(make_config(url, system_id="Blade9")).query()
        with pytest.raises(FatalPowerError, match="not found"):
            await drivers(make_config(url, system_id="/redfish/v1/Systems/Blade9")).query()


async def test_wrong_credentials_are_fatal_and_name_user_and_address(
    bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    _, url = bmc_url
    with pytest.raises(FatalPowerError) as caught:
        await drivers(make_config(url, password="wrong")).power_on()
    message = str(caught.value)
    assert "rejected the credentials for user 'admin'" in message
    assert "HTTP 401" in message
    assert message.startswith(f"BMC {url}:")

    with pytest.raises(FatalPowerError, match="no credentials"):
        await drivers(make_config(url, user="", password="")).query()


async def test_service_unavailable_is_retryable_and_the_next_try_works(
    bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    bmc, url = bmc_url
    driver = drivers(make_config(url))
    bmc.fail_next = [503]
    with pytest.raises(RetryablePowerError, match="HTTP 503 Service Unavailable, try again later"):
        await driver.power_on()
    await driver.power_on()
    assert bmc.resets() == ["On"]


async def test_unsupported_reset_type_is_fatal_before_anything_is_sent(
    drivers: Callable[[BmcConfig], PowerDriver],
) -> None:
    bmc = RedfishBmc(reset_types=("On", "ForceOff", "PowerCycle"))
    async with serve_redfish(bmc) as url:
        driver = drivers(make_config(url))
        await driver.power_on()
        with pytest.raises(FatalPowerError) as caught:
            await driver.power_off(soft=True)
        assert "does not support ResetType GracefulShutdown" in str(caught.value)
        assert "offers ForceOff, On, PowerCycle" in str(caught.value)
        await driver.power_cycle()  # no ForceRestart offered: PowerCycle
    assert bmc.resets() == ["On", "PowerCycle"]


async def test_bad_request_is_fatal_with_the_extended_info_message_in_the_debug_log(
    drivers: Callable[[BmcConfig], PowerDriver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power")
    # The BMC does not advertise its allowed values, so the driver sends, and the BMC says 400.
    bmc = RedfishBmc(reset_types=("On", "ForceOff"), advertise_allowed=False)
    async with serve_redfish(bmc) as url:
        driver = drivers(make_config(url))
        await driver.power_on()
        with pytest.raises(FatalPowerError) as caught:
            await driver.power_off(soft=True)
    message = str(caught.value)
    assert "refused (HTTP 400 Bad Request)" in message
    # What the BMC says goes to the debug log only: an error's message ends up in events.
    assert "does not support the value GracefulShutdown" not in message
    assert "does not support the value GracefulShutdown" in caplog.text


async def test_unsupported_boot_target_is_fatal_before_patching(
    drivers: Callable[[BmcConfig], PowerDriver],
) -> None:
    bmc = RedfishBmc(boot_targets=("None", "Hdd", "Cd"))
    async with serve_redfish(bmc) as url:
        with pytest.raises(FatalPowerError, match="cannot boot from Pxe"):
            await drivers(make_config(url)).set_boot_device(BootDevice.NETWORK)
    assert not [r for r in bmc.requests if r.method == "PATCH"]


async def test_slow_bmc_times_out_retryably(
    bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    bmc, url = bmc_url
    bmc.delay = 3.0
    started = time.monotonic()
    with pytest.raises(RetryablePowerError, match="no answer within 1 s"):
        await drivers(make_config(url, timeout=1)).query()
    assert time.monotonic() - started < 2.5


async def test_connection_refused_is_retryable(
    drivers: Callable[[BmcConfig], PowerDriver],
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RetryablePowerError) as caught:
        await drivers(make_config(f"http://127.0.0.1:{port}")).power_on()
    assert "cannot connect" in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_a_web_server_that_is_not_redfish_is_fatal(
    drivers: Callable[[BmcConfig], PowerDriver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>router login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/redfish/v1", page)
    async with serve_app(app) as url:
        with pytest.raises(FatalPowerError, match=r"not a Redfish JSON object") as caught:
            await drivers(make_config(url)).query()
    assert "router login" not in str(caught.value)
    assert "router login" in caplog.text


async def test_tls_verification(
    tmp_path: Path, drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    ca = make_ca(tmp_path)
    server = make_server_cert(tmp_path, ca, ips=("127.0.0.1",))
    bmc = RedfishBmc()
    async with serve_redfish(bmc, server.server_context()) as url:
        assert url.startswith("https://")
        address = url.removeprefix("https://")  # host:port: https is the default

        with pytest.raises(FatalPowerError) as caught:
            await drivers(make_config(address)).query()
        message = str(caught.value)
        assert "certificate verification failed" in message
        assert "a person must fix this" in message.lower()
        assert "verify_tls=false" in message

        assert await drivers(make_config(address, verify_tls=False)).query() is PowerState.OFF
        trusted = drivers(make_config(address, ca_file=str(ca.cert_path)))
        await trusted.power_on()
        assert await trusted.query() is PowerState.ON

        with pytest.raises(FatalPowerError, match="ca_file"):
            await drivers(make_config(address, ca_file=str(tmp_path / "missing.pem"))).query()

    other = make_server_cert(tmp_path, ca, ips=(), dns_names=("bmc.example",), stem="other")
    async with serve_redfish(RedfishBmc(), other.server_context()) as url:
        with pytest.raises(FatalPowerError, match="certificate verification failed"):
            await drivers(make_config(url, ca_file=str(ca.cert_path))).query()


async def test_wrong_scheme_for_the_port_is_fatal(
    tmp_path: Path, bmc_url: tuple[RedfishBmc, str], drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    _, plain_url = bmc_url
    with pytest.raises(FatalPowerError, match=r"TLS handshake failed.*http://"):
        await drivers(make_config(plain_url.replace("http://", "https://"))).query()

    ca = make_ca(tmp_path)
    server = make_server_cert(tmp_path, ca)
    async with serve_redfish(RedfishBmc(), server.server_context()) as tls_url:
        with pytest.raises(PowerError, match="https port spoken to over http"):
            await drivers(make_config(tls_url.replace("https://", "http://"))).query()


async def test_close_ends_the_session_and_a_new_call_opens_another(
    bmc_url: tuple[RedfishBmc, str],
) -> None:
    _, url = bmc_url
    driver = driver_kind("redfish").create(make_config(url), loopback_env())
    await driver.close()  # never used: nothing to close
    assert await driver.query() is PowerState.OFF
    await driver.close()
    assert await driver.query() is PowerState.OFF
    await driver.close()


async def _poll(
    read: Callable[[], Awaitable[PowerState]], want: PowerState, within: float
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await read() is want:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"power state never became {want} within {within} s")


@pytest.mark.slow
async def test_interoperates_with_sushy_emulator(
    tmp_path: Path, drivers: Callable[[BmcConfig], PowerDriver]
) -> None:
    with SushyEmulator(tmp_path) as sushy:
        driver = drivers(make_config(sushy.url, user="", password=""))
        if await driver.query() is PowerState.ON:
            await driver.power_off()
            await _poll(driver.query, PowerState.OFF, 20)

        await driver.set_boot_device(BootDevice.NETWORK)
        await driver.power_on()
        await _poll(driver.query, PowerState.ON, 20)

        # Read the boot override back with a client of our own, not the driver.
        import aiohttp  # noqa: PLC0415

        async with aiohttp.ClientSession() as session:
            async with session.get(f"{sushy.url}/redfish/v1/Systems") as answer:
                member = (await answer.json())["Members"][0]["@odata.id"]
            async with session.get(f"{sushy.url}{member}") as answer:
                boot = (await answer.json())["Boot"]
        assert boot["BootSourceOverrideTarget"] == "Pxe"
        assert boot["BootSourceOverrideEnabled"] in ("Once", "Continuous")  # LAB.md: Continuous

        await driver.power_off(soft=True)
        await _poll(driver.query, PowerState.OFF, 20)
        accepted = re.findall(r'POST \S+/ComputerSystem\.Reset HTTP/1\.1\S*" 20[04]', sushy.log)
        assert len(accepted) >= 2, sushy.log
