"""Webhook power driver: power a machine by calling URLs (a smart PDU, a hypervisor's API, a
home-made relay board, a lab script behind a small web server).

Configuration is all in options. `on_url` and `off_url` are required; `soft_off_url`,
`cycle_url`, `status_url` and `boot_network_url` are optional. When the BMC address is set it is
a base URL and a URL option may be a path relative to it (`/outlet/3/on`); otherwise every URL
option is absolute. Error messages name the address, or the origin of `on_url` when there is none.

- Action URLs are called with `method` (POST by default) and no body; `status_url` always with
  GET. Any 2xx is success; 401/403 and other 4xx are fatal (the body goes to the debug log only),
  5xx and timeouts are retryable (501 is fatal: the receiver says it cannot do this ever). A
  redirect is not followed (fatal): it would carry the headers and credentials elsewhere.
- Every URL's host is checked against the power targets policy (`power.allow_targets`) when the
  BMC is set and at each call (`http_transport`). A URL may not hold user:password@.
- `headers` is a JSON object string, `{"X-Api-Key": "abc", "X-Site": "lab 2"}`: JSON rather than
  "Name: value; ..." because header values may contain ";" (cookies, parameters). It is a secret
  option: sealed at rest like the password, and the API shows only the header names. `auth=basic`
  sends username/password as HTTP basic auth (when either is set), `auth=bearer` sends
  `Authorization: Bearer <password>`.
- query: GET `status_url` and match the body against `status_on_regex` and `status_off_regex`
  (Python `re.search`). Exactly one matching gives the state; none or both is UNKNOWN (with a
  debug log of the body); without a status URL the state is UNKNOWN.
- soft off without `soft_off_url` is a FatalPowerError, not a hard off: turning a graceful
  shutdown into a power cut must be a person's choice.
- cycle without `cycle_url` is off, `cycle_delay` seconds, on.
- boot device: NETWORK calls `boot_network_url` (fatal without one); `once` is not passed on, the
  receiver decides how long its setting lasts. DISK is a no-op: there is no URL for it, and
  edgebox's boot script already sends a machine that should boot its disk back to it (iPXE
  `exit`), so a machine that network-boots first still ends up on its disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    DriverKind,
    FatalPowerError,
    OptionSpec,
    OptionValue,
    PowerDriver,
    Target,
    check_options,
)
from edgebox.drivers.power.http_transport import (
    HttpOptions,
    HttpReply,
    basic_auth,
    basic_credentials,
    excerpt,
    http_option_specs,
    open_session,
    parse_http_options,
    parse_http_url,
    send,
    status_error,
    url_target,
)
from edgebox.drivers.power.targets import TargetGuard

log = logging.getLogger(__name__)

ACTIONS = ("on", "off", "soft_off", "cycle", "status", "boot_network")
_REQUIRED = ("on", "off")

OPTIONS: dict[str, OptionSpec] = {
    "on_url": OptionSpec(str, "", "URL that powers the machine on (required)", target=True),
    "off_url": OptionSpec(str, "", "URL that powers the machine off (required)", target=True),
    "soft_off_url": OptionSpec(
        str, "", "URL that asks the OS to shut down (empty: soft off is refused)", target=True
    ),
    "cycle_url": OptionSpec(
        str,
        "",
        "URL that power-cycles the machine (empty: off, cycle_delay seconds, on)",
        target=True,
    ),
    "status_url": OptionSpec(
        str,
        "",
        "URL whose answer (GET) tells the power state (empty: the state is unknown)",
        target=True,
    ),
    "boot_network_url": OptionSpec(
        str,
        "",
        "URL that makes the next boot a network boot (empty: network boot is refused)",
        target=True,
    ),
    "method": OptionSpec(
        str,
        "POST",
        "HTTP method for the action URLs (status is always GET)",
        ("POST", "PUT", "GET"),
    ),
    "headers": OptionSpec(
        str,
        "",
        'extra request headers as a JSON object, e.g. {"X-Api-Key": "abc"} (a secret: sealed at'
        " rest, only the header names are shown)",
        secret=True,
        outline=("header_names", lambda text: list(parse_headers(text))),
    ),
    "auth": OptionSpec(
        str,
        "basic",
        "basic: username and password as HTTP basic auth when set; bearer: the password as a"
        " bearer token",
        ("basic", "bearer"),
    ),
    "status_on_regex": OptionSpec(
        str, r"(?i)\bon\b", "regular expression that finds 'on' in the status answer"
    ),
    "status_off_regex": OptionSpec(
        str, r"(?i)\boff\b", "regular expression that finds 'off' in the status answer"
    ),
    "cycle_delay": OptionSpec(
        int, 5, "seconds between off and on when there is no cycle_url", minimum=0, maximum=300
    ),
    **http_option_specs(timeout_default=10),
}

# RFC 9110 section 5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Fields that frame the message or route it: aiohttp sets them, a user must not.
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def parse_headers(text: str) -> dict[str, str]:
    """The `headers` option: a JSON object of header names to string values."""
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f'option headers: not JSON ({exc}); expected {{"Name": "value"}}'
        ) from None
    if not isinstance(document, dict):
        raise ValueError('option headers: expected a JSON object like {"Name": "value"}')
    headers: dict[str, str] = {}
    for name, value in document.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"option headers: {name!r} is not a valid header name")
        if name.lower() in _FRAMING:
            raise ValueError(f"option headers: {name} is set by the HTTP client, not by options")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"option headers: the value of {name} must be a one-line string")
        headers[name] = value
    return headers


def status_from_body(text: str, on: re.Pattern[str], off: re.Pattern[str]) -> PowerState:
    """ON or OFF when exactly one of the two patterns is found in the status answer."""
    is_on, is_off = on.search(text) is not None, off.search(text) is not None
    if is_on != is_off:
        return PowerState.ON if is_on else PowerState.OFF
    return PowerState.UNKNOWN


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    label: str  # what error messages call the BMC
    urls: Mapping[str, URL]  # action name -> URL, only the configured ones
    method: str
    # Holds the credentials' Authorization header: kept out of repr() like BmcConfig.password.
    headers: Mapping[str, str] = field(repr=False)
    on_pattern: re.Pattern[str]
    off_pattern: re.Pattern[str]
    cycle_delay: int
    http: HttpOptions
    credentials: str  # what error messages say was sent to authenticate


def parse_urls(config: BmcConfig, options: Mapping[str, OptionValue]) -> dict[str, URL]:
    """Action name -> absolute URL, for the configured actions; ValueError if one is wrong."""
    base = parse_http_url(config.address, option="address") if config.address else None
    urls: dict[str, URL] = {}
    for action in ACTIONS:
        text = str(options[f"{action}_url"]).strip()
        if text:
            urls[action] = _resolve(text, base, f"{action}_url")
        elif action in _REQUIRED:
            raise ValueError(f"option {action}_url: required by the webhook driver")
    return urls


def parse_webhook_config(config: BmcConfig, options: Mapping[str, OptionValue]) -> WebhookSettings:
    """Everything the driver needs from `config` and its checked options; ValueError if wrong."""
    urls = parse_urls(config, options)
    headers = parse_headers(str(options["headers"]))
    bearer = options["auth"] == "bearer"
    auth_header = _auth_header(config, bearer=bearer)
    if auth_header and any(name.lower() == "authorization" for name in headers):
        raise ValueError(
            "option headers: sets Authorization, and so do the username/password (auth option)"
        )
    headers.update(auth_header)
    cycle_delay = options["cycle_delay"]
    assert isinstance(cycle_delay, int)
    return WebhookSettings(
        label=config.address or str(urls["on"].origin()),
        urls=urls,
        method=str(options["method"]),
        headers=headers,
        on_pattern=_compile(str(options["status_on_regex"]), "status_on_regex"),
        off_pattern=_compile(str(options["status_off_regex"]), "status_off_regex"),
        cycle_delay=cycle_delay,
        http=parse_http_options(options),
        credentials=(
            "the bearer token" if bearer else basic_credentials(config.username, config.password)
        ),
    )


def _resolve(text: str, base: URL | None, option: str) -> URL:
    """An absolute URL option, or a relative one joined to the address (the base URL)."""
    if base is not None and not text.startswith(("http://", "https://")):
        text = str(base.join(URL(text)))
    return parse_http_url(text, option=option)


def _auth_header(config: BmcConfig, *, bearer: bool) -> dict[str, str]:
    """The Authorization header that the auth option and the username/password call for."""
    if bearer:
        if not config.password:
            raise ValueError("option auth: bearer needs the token in the password")
        if any(c in config.password for c in "\r\n\0"):
            raise ValueError("option auth: the bearer token must be one line")
        return {"Authorization": f"Bearer {config.password}"}
    return basic_auth(config.username, config.password)


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"option {option}: not a regular expression: {exc}") from None


class WebhookDriver:
    """Calls the configured URLs through one aiohttp session (opened on first use)."""

    def __init__(self, settings: WebhookSettings, guard: TargetGuard) -> None:
        self._settings = settings
        self._guard = guard
        self._session: aiohttp.ClientSession | None = None

    async def power_on(self) -> None:
        await self._call("on")

    async def power_off(self, *, soft: bool = False) -> None:
        await self._call("soft_off" if soft else "off")

    async def power_cycle(self) -> None:
        if "cycle" in self._settings.urls:
            await self._call("cycle")
            return
        await self._call("off")
        await asyncio.sleep(self._settings.cycle_delay)
        await self._call("on")

    async def query(self) -> PowerState:
        if "status" not in self._settings.urls:
            return PowerState.UNKNOWN
        reply = await self._request("status", "GET")
        text = reply.text()
        state = status_from_body(text, self._settings.on_pattern, self._settings.off_pattern)
        if state is PowerState.UNKNOWN:
            log.debug(
                "webhook status: on and off patterns both or neither match address=%s body=%r",
                self._settings.label,
                excerpt(text),
            )
        return state

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None:
        if device is BootDevice.NETWORK:
            await self._call("boot_network")
        else:
            log.debug(
                "webhook boot device %s: nothing to call address=%s", device, self._settings.label
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _call(self, action: str) -> None:
        await self._request(action, self._settings.method)
        log.info("webhook %s called address=%s", action, self._settings.label)

    async def _request(self, action: str, method: str) -> HttpReply:
        settings = self._settings
        url = settings.urls.get(action)
        if url is None:
            raise FatalPowerError(settings.label, f"this webhook has no {action} URL")
        if self._session is None:
            self._session = await open_session(
                settings.label, settings.http, guard=self._guard, headers=settings.headers
            )
        reply = await send(
            self._session,
            method,
            url,
            address=settings.label,
            guard=self._guard,
            timeout_s=settings.http.timeout,
        )
        if not reply.ok:
            raise status_error(
                settings.label,
                f"{action}: {method} {url.path}",
                reply,
                credentials=settings.credentials,
            )
        return reply


def create(config: BmcConfig, env: DriverEnv) -> PowerDriver:
    """A driver for `config`; a configuration mistake is a FatalPowerError naming the address."""
    try:
        options = check_options(KIND, config.options)
        settings = parse_webhook_config(config, options)
    except ValueError as exc:
        raise FatalPowerError(config.address or "webhook", str(exc)) from None
    return WebhookDriver(settings, env.targets)


def targets(config: BmcConfig) -> list[Target]:
    """The host of every configured URL (ValueError when the configuration is wrong)."""
    urls = parse_urls(config, check_options(KIND, config.options))
    return [url_target(url, f"option {action}_url") for action, url in urls.items()]


KIND = DriverKind(
    name="webhook",
    description="calls configured HTTP URLs to power on, off, cycle and query",
    options=OPTIONS,
    needs_address=False,
    create=create,
    targets=targets,
)
