"""HTTP plumbing shared by the Redfish and webhook power drivers: TLS and timeout options, one
aiohttp session per driver, and the mapping of every failure onto the fatal/retryable split.

Whose fault, and whether retrying helps:
- the BMC refused the connection, did not answer in time, dropped the connection, or answered
  5xx, 408 or 429: retryable. BMCs reboot, restart their web servers and throttle clients all
  the time, and a retry a few seconds later usually works.
- TLS certificate verification failed: fatal. The BMC presents the same certificate next time; a
  person must install one that edgebox trusts, point `ca_file` at its CA, or set
  `verify_tls=false`. A TLS handshake that fails for another reason than a dropped connection
  (no TLS version or cipher in common; https to a plain-http port) is fatal for the same reason.
- 401/403 (credentials), 404 (wrong address or resource), 501 (not implemented) and any other
  4xx: fatal.
- a redirect (3xx): fatal. Redirects are not followed: the next request would carry the
  credentials and custom headers to wherever the BMC points, past the target check. The
  message names where it points, so a person can set that address instead.
- the address, or what its name resolves to, is refused by the target check
  (`domain.power_targets`): fatal, with what to add to `power.allow_targets`.

What a BMC says in an error body goes to the debug log only, never into the error's message:
the message ends up in events and API answers, and a target that echoes bodies there would let
anyone who may set a BMC read what some internal web server answers.
"""

from __future__ import annotations

import asyncio
import http
import logging
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from edgebox.domain.power_targets import is_ip_literal
from edgebox.drivers.power.base import (
    FatalPowerError,
    OptionSpec,
    OptionValue,
    PowerError,
    RetryablePowerError,
    Target,
)
from edgebox.drivers.power.targets import TargetGuard, TargetRefused

log = logging.getLogger(__name__)

# A BMC's JSON is a few KiB; a webhook status page should not be much more. Anything beyond this
# is cut off rather than held in memory.
MAX_BODY_BYTES = 1 << 20

# The HTTP statuses that mean "come back later" although they are 4xx.
_RETRY_LATER = frozenset({408, 429})


def http_option_specs(timeout_default: int) -> dict[str, OptionSpec]:
    """The options every HTTP power driver has: TLS verification, a CA file, a timeout."""
    return {
        "verify_tls": OptionSpec(
            bool,
            True,
            "check the TLS certificate of the BMC (false accepts any certificate, such as a"
            " factory self-signed one)",
            target=True,
        ),
        "ca_file": OptionSpec(
            str,
            "",
            "PEM file with the CA certificate(s) that signed the BMC's certificate (empty: the"
            " system's trust store)",
            target=True,
        ),
        "timeout": OptionSpec(
            int,
            timeout_default,
            "seconds to wait for each HTTP request, connecting included",
            minimum=1,
            maximum=300,
        ),
    }


@dataclass(frozen=True, slots=True)
class HttpOptions:
    verify_tls: bool
    ca_file: str
    timeout: int


def parse_http_options(options: Mapping[str, OptionValue]) -> HttpOptions:
    """The TLS and timeout options from checked driver options; ValueError when they disagree."""
    verify_tls = bool(options["verify_tls"])
    ca_file = str(options["ca_file"])
    if ca_file and not verify_tls:
        raise ValueError(
            "option ca_file: set, but verify_tls is false so it would be ignored;"
            " drop one of the two"
        )
    timeout = options["timeout"]
    assert isinstance(timeout, int)
    return HttpOptions(verify_tls=verify_tls, ca_file=ca_file, timeout=timeout)


def parse_http_url(text: str, *, option: str) -> URL:
    """An absolute http(s) URL with a host; ValueError naming `option` otherwise."""
    try:
        url = URL(text)
    except ValueError as exc:
        raise ValueError(f"option {option}: not a URL: {text!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"option {option}: expected an http:// or https:// URL, got {text!r}")
    if url.user is not None or url.password is not None:
        raise ValueError(
            f"option {option}: the URL holds credentials (user:password@), which would be"
            " stored and shown in the clear; put them in the BMC's username and password"
        )
    return url


def url_target(url: URL, source: str) -> Target:
    """The host and port a URL makes a driver connect to."""
    assert url.host is not None
    return Target(source, url.host, url.port or (443 if url.scheme == "https" else 80))


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The Authorization header for HTTP basic auth, or none when both are empty."""
    if not username and not password:
        return {}
    return {"Authorization": aiohttp.encode_basic_auth(username, password)}


def tls_setting(options: HttpOptions) -> ssl.SSLContext | bool:
    """What aiohttp's `ssl=` takes. Reads `ca_file`, so call it off the event loop when set."""
    if not options.verify_tls:
        return False
    if not options.ca_file:
        return True
    return ssl.create_default_context(cafile=options.ca_file)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver that refuses a name resolving to an address the guard refuses:
    the addresses judged are the ones the connection is made to."""

    def __init__(self, guard: TargetGuard) -> None:
        self._guard = guard
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._guard.check_addresses(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        await self._inner.close()


async def open_session(
    address: str,
    options: HttpOptions,
    *,
    guard: TargetGuard,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientSession:
    """A session for one driver, sending `headers` (credentials too) with every request to
    hosts the guard allows; `send` follows no redirect. An unreadable `ca_file` is a
    FatalPowerError.
    """
    try:
        tls = await asyncio.to_thread(tls_setting, options)
    except (OSError, ssl.SSLError) as exc:
        raise FatalPowerError(
            address, f"cannot load CA certificates from ca_file {options.ca_file!r}: {exc}"
        ) from exc
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=options.timeout),
        connector=aiohttp.TCPConnector(ssl=tls, resolver=GuardedResolver(guard)),
        headers=dict(headers or {}),
    )


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    address: str,
    guard: TargetGuard,
    timeout_s: int,
    json: object = None,
    headers: Mapping[str, str] | None = None,
) -> HttpReply:
    """One request, redirects not followed; any status comes back as a reply, any transport
    failure or a refused target as a PowerError."""
    what = f"{method} {url.path}"  # not the query: it may hold a token
    try:
        if url.host is not None and is_ip_literal(url.host):
            # aiohttp does not ask the resolver about an address: check it here.
            guard.check_addresses(url.host, [url.host])
        async with session.request(
            method, url, json=json, headers=headers, allow_redirects=False
        ) as response:
            body = await response.content.read(MAX_BODY_BYTES)
            return HttpReply(response.status, dict(response.headers), body)
    except TargetRefused as exc:
        raise FatalPowerError(address, f"{what}: {exc}") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise transport_error(address, what, exc, timeout_s=timeout_s, scheme=url.scheme) from exc


def transport_error(  # noqa: PLR0911 (one return per kind of failure, in the order tested)
    address: str, what: str, exc: BaseException, *, timeout_s: int, scheme: str = "https"
) -> PowerError:
    """A request that got no HTTP answer, as a fatal or retryable error (see the module doc)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return FatalPowerError(
            address,
            f"{what}: TLS certificate verification failed ({exc.certificate_error}). A person"
            " must fix this: give the BMC a certificate for this address that edgebox trusts,"
            " set ca_file to the CA that signed it, or set verify_tls=false to accept any"
            " certificate",
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        cause = exc.os_error
        if isinstance(cause, ssl.SSLEOFError | ConnectionResetError):
            return RetryablePowerError(address, f"{what}: connection dropped in the TLS handshake")
        return FatalPowerError(
            address,
            f"{what}: TLS handshake failed ({cause}): the BMC and edgebox share no TLS version"
            " or cipher, or this port does not speak TLS (then use an http:// address)",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return RetryablePowerError(address, f"{what}: cannot resolve the host name ({exc})")
    if isinstance(exc, TimeoutError):
        return RetryablePowerError(address, f"{what}: no answer within {timeout_s} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return RetryablePowerError(address, f"{what}: cannot connect ({reason})")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        hint = " (an https port spoken to over http?)" if scheme == "http" else ""
        return RetryablePowerError(
            address, f"{what}: the BMC closed the connection without answering{hint}"
        )
    # What follows may quote the bytes that came back: those go to the debug log only.
    log.debug(
        "http power request failed address=%s what=%s error=%s", address, what, _described(exc)
    )
    if isinstance(exc, aiohttp.ClientResponseError):
        # The bytes that came back were not HTTP at all: a wrong port or protocol.
        hint = " (an https port spoken to over http?)" if scheme == "http" else ""
        return FatalPowerError(
            address, f"{what}: the answer is not HTTP{hint} (details in the debug log)"
        )
    return RetryablePowerError(address, f"{what}: {type(exc).__name__} (details in the debug log)")


def _described(exc: BaseException) -> str:
    """An exception for the log, without what aiohttp's repr carries along: the request's
    headers (the Authorization header among them) and its URL (a query may hold a token)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def basic_credentials(username: str, password: str) -> str:
    """How an error message names what basic auth sent ("" when nothing was sent)."""
    if username:
        return f"the credentials for user {username!r}"
    return "a password with no username" if password else ""


def status_error(
    address: str, what: str, reply: HttpReply, *, credentials: str, detail: str = ""
) -> PowerError:
    """A non-2xx answer as a fatal or retryable error. `credentials` names what was sent to
    authenticate ("" for nothing), for 401 and 403. What the BMC said (`detail`, else the
    start of the body) is logged at debug level, never put in the message (see the module doc).
    """
    status = reply.status
    log.debug(
        "http power request refused address=%s what=%s status=%d body=%r",
        address,
        what,
        status,
        detail or excerpt(reply.text()),
    )
    line = f"HTTP {status} {_phrase(status)}".rstrip()
    if 300 <= status < 400:
        where = _origin(reply.headers.get("Location", ""))
        to = f" to {where}" if where else ""
        return FatalPowerError(
            address,
            f"{what}: redirected (HTTP {status}){to}; edgebox does not follow redirects, which"
            " would carry the credentials elsewhere: set the address or URL to where it points",
        )
    if status in (401, 403):
        who = credentials or "a request with no credentials"
        why = " (or the user lacks the privilege for this)" if status == 403 else ""
        return FatalPowerError(address, f"{what}: the BMC rejected {who}{why} ({line})")
    if status in _RETRY_LATER or (status >= 500 and status != 501):
        return RetryablePowerError(address, f"{what}: {line}, try again later")
    if status == 404:
        return FatalPowerError(address, f"{what}: not found ({line})")
    if status == 501:
        return FatalPowerError(address, f"{what}: not implemented by the BMC ({line})")
    return FatalPowerError(address, f"{what}: refused ({line})")


def _phrase(status: int) -> str:
    """The standard reason phrase (the BMC's own words are not used: see the module doc)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _origin(location: str) -> str:
    try:
        url = URL(location)
    except ValueError:
        return ""
    return str(url.origin()) if url.is_absolute() and url.host else ""


def excerpt(text: str, limit: int = 200) -> str:
    """The first `limit` characters of `text` on one line, for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
