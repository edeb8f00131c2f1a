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
  4xx: fatal, with what the BMC said about it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from edgebox.drivers.power.base import (
    FatalPowerError,
    OptionSpec,
    OptionValue,
    PowerError,
    RetryablePowerError,
)

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
        ),
        "ca_file": OptionSpec(
            str,
            "",
            "PEM file with the CA certificate(s) that signed the BMC's certificate (empty: the"
            " system's trust store)",
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
    return url


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


async def open_session(
    address: str,
    options: HttpOptions,
    *,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientSession:
    """A session for one driver, sending `headers` (credentials too) with every request.

    aiohttp drops an Authorization header on a redirect to another host. An unreadable
    `ca_file` is a FatalPowerError.
    """
    try:
        tls = await asyncio.to_thread(tls_setting, options)
    except (OSError, ssl.SSLError) as exc:
        raise FatalPowerError(
            address, f"cannot load CA certificates from ca_file {options.ca_file!r}: {exc}"
        ) from exc
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=options.timeout),
        connector=aiohttp.TCPConnector(ssl=tls),
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
    timeout_s: int,
    json: object = None,
    headers: Mapping[str, str] | None = None,
) -> HttpReply:
    """One request; any status comes back as a reply, any transport failure as a PowerError."""
    what = f"{method} {url.path_qs}"
    try:
        async with session.request(method, url, json=json, headers=headers) as response:
            body = await response.content.read(MAX_BODY_BYTES)
            return HttpReply(response.status, dict(response.headers), body)
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
    if isinstance(exc, aiohttp.ClientResponseError) and not isinstance(
        exc, aiohttp.TooManyRedirects
    ):
        # The bytes that came back were not HTTP at all: a wrong port or protocol.
        hint = " (an https port spoken to over http?)" if scheme == "http" else ""
        return FatalPowerError(address, f"{what}: the answer is not HTTP: {exc.message}{hint}")
    return RetryablePowerError(address, f"{what}: {type(exc).__name__}: {exc}")


def basic_credentials(username: str, password: str) -> str:
    """How an error message names what basic auth sent ("" when nothing was sent)."""
    if username:
        return f"the credentials for user {username!r}"
    return "a password with no username" if password else ""


def status_error(
    address: str, what: str, status: int, detail: str, *, credentials: str
) -> PowerError:
    """A non-2xx answer as a fatal or retryable error. `detail` is what the BMC said, if any;
    `credentials` names what was sent to authenticate ("" for nothing), for 401 and 403."""
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        who = credentials or "a request with no credentials"
        why = " (or the user lacks the privilege for this)" if status == 403 else ""
        return FatalPowerError(
            address, f"{what}: the BMC rejected {who}{why} (HTTP {status}){said}"
        )
    if status in _RETRY_LATER or (status >= 500 and status != 501):
        return RetryablePowerError(address, f"{what}: HTTP {status}, try again later{said}")
    if status == 404:
        return FatalPowerError(address, f"{what}: not found (HTTP 404){said}")
    if status == 501:
        return FatalPowerError(address, f"{what}: not implemented by the BMC (HTTP 501){said}")
    return FatalPowerError(address, f"{what}: refused (HTTP {status}){said}")


def excerpt(text: str, limit: int = 200) -> str:
    """The first `limit` characters of `text` on one line, for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
