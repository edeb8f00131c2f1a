"""The pure parts of the HTTP power drivers: addresses, options, headers, Redfish documents and
the mapping of HTTP answers onto fatal and retryable errors."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power import redfish, webhook
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    FatalPowerError,
    RetryablePowerError,
    check_options,
)
from edgebox.drivers.power.http_transport import (
    HttpReply,
    basic_credentials,
    excerpt,
    parse_http_options,
    parse_http_url,
    status_error,
    transport_error,
)

ENV = DriverEnv.strict()


def reply(status: int, body: str = "", **headers: str) -> HttpReply:
    return HttpReply(status, headers, body.encode())


# --- Redfish address -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "base"),
    [
        ("10.0.0.5", "https://10.0.0.5/"),
        ("bmc-7.site", "https://bmc-7.site/"),
        ("bmc:8443", "https://bmc:8443/"),
        ("fd00::5", "https://[fd00::5]/"),
        ("[fd00::5]:8443", "https://[fd00::5]:8443/"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("https://bmc/redfish/v1/", "https://bmc/"),
        ("  https://bmc/  ", "https://bmc/"),
    ],
)
def test_redfish_address_forms(address: str, base: str) -> None:
    assert str(redfish.parse_redfish_address(address)) == base


@pytest.mark.parametrize(
    ("address", "complaint"),
    [
        ("", "needs an address"),
        ("ftp://bmc", "http:// or https://"),
        ("https://bmc/cgi-bin/power", "base URL"),
        ("https://bmc/?x=1", "base URL"),
    ],
)
def test_redfish_address_mistakes(address: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        redfish.parse_redfish_address(address)


def test_redfish_create_turns_configuration_mistakes_into_fatal_errors_naming_the_address() -> None:
    with pytest.raises(FatalPowerError) as caught:
        redfish.create(BmcConfig("redfish", "ftp://bmc9"), ENV)
    assert caught.value.address == "ftp://bmc9"
    assert str(caught.value).startswith("BMC ftp://bmc9:")
    with pytest.raises(FatalPowerError, match="unknown option 'verify'"):
        redfish.create(BmcConfig("redfish", "bmc9", options={"verify": False}), ENV)
    with pytest.raises(FatalPowerError, match="option timeout"):
        redfish.create(BmcConfig("redfish", "bmc9", options={"timeout": 0}), ENV)


# --- HTTP options ----------------------------------------------------------------------------


def test_http_options_defaults_and_the_contradiction() -> None:
    options = check_options(redfish.KIND, {})
    parsed = parse_http_options(options)
    assert (parsed.verify_tls, parsed.ca_file, parsed.timeout) == (True, "", 30)
    assert check_options(webhook.KIND, {"on_url": "x"})["timeout"] == 10
    with pytest.raises(ValueError, match="verify_tls is false"):
        parse_http_options(check_options(redfish.KIND, {"verify_tls": False, "ca_file": "/ca"}))
    with pytest.raises(ValueError, match="from 1 to 300"):
        check_options(redfish.KIND, {"timeout": 301})


# --- Redfish documents -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ("On", PowerState.ON),
        ("PoweringOn", PowerState.ON),
        ("Paused", PowerState.ON),
        ("Off", PowerState.OFF),
        ("PoweringOff", PowerState.OFF),
        (None, PowerState.UNKNOWN),
        ("Weird", PowerState.UNKNOWN),
    ],
)
def test_redfish_power_states(value: str | None, state: PowerState) -> None:
    system: dict[str, Any] = {} if value is None else {"PowerState": value}
    assert redfish.power_state_of(system) is state


def test_reset_action_and_boot_targets_with_and_without_allowable_values() -> None:
    target = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
    system = {
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": target,
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff"],
            }
        },
        "Boot": {"BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Hdd"]},
    }
    assert redfish.reset_action_of(system) == redfish.ResetAction(
        target, frozenset({"On", "ForceOff"})
    )
    assert redfish.boot_targets_of(system) == frozenset({"Pxe", "Hdd"})

    silent = {"Actions": {"#ComputerSystem.Reset": {"target": target}}, "Boot": {}}
    assert redfish.reset_action_of(silent) == redfish.ResetAction(target, None)
    assert redfish.boot_targets_of(silent) is None
    assert redfish.reset_action_of({"Actions": {}}) is None
    assert redfish.reset_action_of({}) is None


def test_boot_override_bodies() -> None:
    assert redfish.boot_override(BootDevice.NETWORK, once=True) == {
        "Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}
    }
    assert redfish.boot_override(BootDevice.DISK, once=False) == {
        "Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous"}
    }


def test_choose_system() -> None:
    one = ["/redfish/v1/Systems/System.Embedded.1"]
    two = ["/redfish/v1/Systems/1", "/redfish/v1/Systems/2"]
    assert redfish.choose_system(one, "") == one[0]
    assert redfish.choose_system(two, "2") == two[1]
    assert redfish.choose_system(two, "/redfish/v1/Systems/1") == two[0]
    with pytest.raises(ValueError, match=r"2 systems \(1, 2\): set the system_id option"):
        redfish.choose_system(two, "")
    with pytest.raises(ValueError, match="empty"):
        redfish.choose_system([], "")
    with pytest.raises(ValueError, match="no system '3'"):
        redfish.choose_system(two, "3")


def test_redfish_error_detail() -> None:
    extended = {
        "error": {
            "code": "Base.1.8.GeneralError",
            "message": "A general error has occurred.",
            "@Message.ExtendedInfo": [
                {"MessageId": "Base.1.8.PropertyValueNotInList", "Message": "Bad value Foo."},
                {"MessageId": "Base.1.8.Other", "Message": "And more."},
            ],
        }
    }
    assert (
        redfish.redfish_error_detail(json.dumps(extended).encode()) == "Bad value Foo.; And more."
    )
    # sushy-tools: ExtendedInfo without Message, the text is in error.message.
    sushy = {
        "error": {
            "code": "Base.1.0.GeneralError",
            "message": "Power state Bogus is not supported",
            "@Message.ExtendedInfo": [{"MessageId": "Base.1.0.GeneralError"}],
        }
    }
    assert redfish.redfish_error_detail(json.dumps(sushy).encode()) == (
        "Power state Bogus is not supported"
    )
    assert redfish.redfish_error_detail(b"<html>\n  Oops\n</html>") == "<html> Oops </html>"
    assert redfish.redfish_error_detail(b'{"x": 1}') == '{"x": 1}'


# --- HTTP answers and failures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fatal", "words"),
    [
        (401, True, "rejected the credentials for user 'root' (HTTP 401 Unauthorized)"),
        (403, True, "lacks the privilege"),
        (400, True, "refused (HTTP 400 Bad Request)"),
        (404, True, "not found (HTTP 404 Not Found)"),
        (405, True, "refused (HTTP 405 Method Not Allowed)"),
        (409, True, "refused (HTTP 409 Conflict)"),
        (408, False, "HTTP 408 Request Timeout, try again later"),
        (429, False, "HTTP 429 Too Many Requests, try again later"),
        (500, False, "HTTP 500"),
        (502, False, "HTTP 502"),
        (503, False, "HTTP 503"),
        (504, False, "HTTP 504"),
        (501, True, "not implemented"),
        (599, False, "HTTP 599, try again later"),
    ],
)
def test_status_error_split_without_the_body(
    status: int, fatal: bool, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power.http_transport")
    who = basic_credentials("root", "pw")
    error = status_error(
        "bmc1", "POST /x", reply(status, "root:x:0:0 secret body"), credentials=who
    )
    assert error.fatal is fatal
    assert isinstance(error, FatalPowerError if fatal else RetryablePowerError)
    assert words in str(error)
    assert str(error).startswith("BMC bmc1: POST /x:")
    # What the server said goes to the debug log, never into the error (events, API answers).
    assert "secret body" not in str(error)
    assert "root:x:0:0 secret body" in caplog.text


def test_a_redirect_is_fatal_and_names_only_where_it_points() -> None:
    error = status_error(
        "bmc1",
        "GET /redfish/v1",
        reply(302, Location="https://bmc1.example:8443/redfish/v1?token=abc"),
        credentials="",
    )
    assert isinstance(error, FatalPowerError)
    assert "redirected (HTTP 302) to https://bmc1.example:8443;" in str(error)
    assert "does not follow redirects" in str(error)
    assert "token" not in str(error)
    relative = status_error("b", "GET /", reply(301, Location="/elsewhere"), credentials="")
    assert "redirected (HTTP 301);" in str(relative)


def test_status_error_names_what_was_sent_to_authenticate() -> None:
    nothing = basic_credentials("", "")
    assert "with no credentials" in str(status_error("b", "GET /", reply(401), credentials=nothing))
    no_user = basic_credentials("", "pw")
    assert "a password with no username" in str(
        status_error("b", "GET /", reply(401), credentials=no_user)
    )


def test_transport_errors_without_a_socket() -> None:
    timeout = transport_error("bmc1", "GET /", TimeoutError(), timeout_s=7)
    assert isinstance(timeout, RetryablePowerError)
    assert "no answer within 7 s" in str(timeout)
    gone = transport_error("bmc1", "GET /", aiohttp.ServerDisconnectedError(), timeout_s=7)
    assert isinstance(gone, RetryablePowerError)
    assert "https port" not in str(gone)
    hint = transport_error(
        "bmc1", "GET /", aiohttp.ServerDisconnectedError(), timeout_s=7, scheme="http"
    )
    assert "https port spoken to over http" in str(hint)


def test_an_answer_that_is_not_http_is_not_quoted_and_the_log_holds_no_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgebox.drivers.power")
    sent = CIMultiDictProxy(CIMultiDict({"Authorization": "Basic c2VjcmV0LXB3"}))
    url = URL("http://bmc1/on?token=t0k-123")
    garbage = aiohttp.ClientResponseError(
        RequestInfo(url, "POST", sent, url),
        (),
        message="Bad status line 'SSH-2.0-OpenSSH_9.2 internal banner'",
    )
    error = transport_error("bmc1", "POST /on", garbage, timeout_s=7, scheme="http")
    assert isinstance(error, FatalPowerError)
    assert "the answer is not HTTP" in str(error)
    assert "OpenSSH" not in str(error)
    assert "OpenSSH" in caplog.text  # the detail is in the debug log...
    assert "c2VjcmV0LXB3" not in caplog.text  # ...but not the request's credentials
    assert "t0k-123" not in caplog.text


def test_urls_with_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match=r"option on_url: the URL holds credentials"):
        parse_http_url("http://admin:pw@pdu7/on", option="on_url")


def test_excerpt_flattens_and_cuts() -> None:
    assert excerpt("a\n  b\tc") == "a b c"
    assert excerpt("x" * 300) == "x" * 200 + "…"
    assert excerpt("y" * 200) == "y" * 200


# --- webhook ---------------------------------------------------------------------------------


def test_headers_parse() -> None:
    assert webhook.parse_headers("") == {}
    assert webhook.parse_headers("  ") == {}
    assert webhook.parse_headers('{"X-Api-Key": "abc", "Cookie": "a=1; b=2"}') == {
        "X-Api-Key": "abc",
        "Cookie": "a=1; b=2",
    }


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("X-Api-Key: abc", "not JSON"),
        ('["X-Api-Key", "abc"]', "JSON object"),
        ('{"Bad Name": "x"}', "not a valid header name"),
        ('{"Content-Length": "5"}', "set by the HTTP client"),
        ('{"host": "evil"}', "set by the HTTP client"),
        ('{"X-A": "1\\r\\nX-B: 2"}', "one-line string"),
        ('{"X-A": 5}', "one-line string"),
    ],
)
def test_header_mistakes(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        webhook.parse_headers(text)


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ('{"power": "on"}', PowerState.ON),
        ("POWER: OFF", PowerState.OFF),
        ("on_since=12 state=off", PowerState.OFF),  # \bon\b does not match "on_since"
        ("rebooting", PowerState.UNKNOWN),
        ("on, was off", PowerState.UNKNOWN),
        ("", PowerState.UNKNOWN),
    ],
)
def test_status_from_body_with_the_default_patterns(body: str, state: PowerState) -> None:
    on = re.compile(str(webhook.OPTIONS["status_on_regex"].default))
    off = re.compile(str(webhook.OPTIONS["status_off_regex"].default))
    assert webhook.status_from_body(body, on, off) is state


def _settings(address: str = "", user: str = "", password: str = "", **given: Any) -> Any:
    config = BmcConfig("webhook", address, user, password, given)
    return webhook.parse_webhook_config(config, check_options(webhook.KIND, given))


def test_webhook_urls_labels_and_credentials() -> None:
    settings = _settings(
        "https://pdu7:8443/api/", "u", "p", on_url="outlet/1/on", off_url="https://other/off"
    )
    assert str(settings.urls["on"]) == "https://pdu7:8443/api/outlet/1/on"
    assert str(settings.urls["off"]) == "https://other/off"
    assert set(settings.urls) == {"on", "off"}
    assert settings.label == "https://pdu7:8443/api/"
    assert settings.headers["Authorization"].startswith("Basic ")
    assert "Basic" not in repr(settings)  # credentials stay out of logs

    bare = _settings(on_url="http://10.1.1.1:81/on", off_url="http://10.1.1.1:81/off")
    assert bare.label == "http://10.1.1.1:81"
    assert "Authorization" not in bare.headers

    bearer = _settings(password="t0k", auth="bearer", on_url="http://h/on", off_url="http://h/off")
    assert bearer.headers["Authorization"] == "Bearer t0k"


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ({"on_url": ""}, "on_url: required"),
        ({"on_url": "/on", "off_url": "/off"}, "on_url: expected an http"),
        ({"on_url": "ftp://h/on", "off_url": "http://h/off"}, "on_url: expected an http"),
        ({"auth": "bearer"}, "bearer needs the token"),
        ({"headers": '{"Authorization": "x"}', "password": "p"}, "sets Authorization"),
        ({"status_on_regex": "(unclosed"}, "status_on_regex: not a regular expression"),
    ],
)
def test_webhook_configuration_mistakes(given: dict[str, Any], complaint: str) -> None:
    options = {"on_url": "http://h/on", "off_url": "http://h/off", **given}
    password = options.pop("password", "")
    with pytest.raises(ValueError, match=complaint):
        _settings(password=password, **options)
    with pytest.raises(FatalPowerError, match=complaint):
        webhook.create(BmcConfig("webhook", "", "", password, options), ENV)
