"""A small HTTP client for the edgebox REST API, used by the command-line client only.

Every call is one request to `/api/v1/...` with the bearer token; a JSON body comes back or an
error is raised. Failures fall into two kinds, which the CLI maps to exit codes:

- `ApiError`: the server answered and said no (4xx/5xx). The API's error body is
  `{"error": code, "message": text, "field": optional}`; a body that is not that (a proxy's HTML
  page, say) still becomes an `ApiError` with the HTTP status in its message.
- `ServerUnreachable`: no answer at all (refused, no route, DNS, timeout, dropped connection).

The event stream is a WebSocket that yields one JSON event object per text message.

This module knows nothing about click or rich, so it can be tested and reused on its own.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import AsyncGenerator, Iterable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v1"

# The session's timeout has no total, because the event stream lasts as long as the user wants;
# pings find a dead stream instead. Plain requests are small and get a total of their own: a
# server that does not answer in that long is treated as unreachable.
_SESSION_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10)
_REQUEST_TIMEOUT: Final = aiohttp.ClientTimeout(total=60, sock_connect=10)
_STREAM_HEARTBEAT_S: Final = 30.0
# When the CLI stops following it closes the stream; it need not wait long for the server's
# half of the closing handshake (a server that only ever sends never gives it).
_STREAM_TIMEOUT: Final = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0)

JsonObject = dict[str, Any]
QueryParams = Iterable[tuple[str, str]]


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        if self.field and self.field not in self.message:
            return f"{self.message} (field: {self.field})"
        return self.message


class ServerUnreachable(Exception):
    """No HTTP answer came back from the server; `reason` says what happened instead."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot reach edgebox at {self.url}: {self.reason}"


def path_segment(value: str | int) -> str:
    """Quote one path segment, so that a hostname with odd characters stays one segment."""
    return quote(str(value), safe="")


def describe_connection_error(exc: BaseException) -> str:
    """Say in a few plain words why a connection failed ("connection refused")."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not found"
    if isinstance(exc, aiohttp.ClientConnectorError):
        # asyncio's strerror is "Connect call failed ('127.0.0.1', 5240)"; the errno says more.
        if exc.os_error.errno == errno.ECONNREFUSED:
            return "connection refused"
        return exc.os_error.strerror or str(exc.os_error) or "connection failed"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


async def _error_from_response(response: aiohttp.ClientResponse) -> ApiError:
    text = await response.text(errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        field = body.get("field")
        return ApiError(
            status=response.status,
            code=str(body.get("error", "error")),
            message=body["message"],
            field=field if isinstance(field, str) else None,
        )
    return ApiError(
        status=response.status,
        code="http_error",
        message=f"HTTP {response.status} {response.reason or ''}".rstrip(),
    )


class ApiClient:
    """One session against one edgebox server. Use as `async with ApiClient(url, token) as c:`."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._session = aiohttp.ClientSession(headers=headers, timeout=_SESSION_TIMEOUT)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ApiClient used outside 'async with'")
        return self._session

    def url_for(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams = (),
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body, or None for an empty (204) answer."""
        url = self.url_for(path)
        logger.debug("request method=%s url=%s", method, url)
        try:
            async with self.session.request(
                method, url, params=list(params), json=body, timeout=_REQUEST_TIMEOUT
            ) as response:
                if response.status >= 400:
                    raise await _error_from_response(response)
                if response.status == 204:
                    return None
                text = await response.text()
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise ServerUnreachable(self.base_url, describe_connection_error(exc)) from exc
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ApiError(
                status=response.status,
                code="bad_response",
                message=f"the server sent a body that is not JSON ({method} {path})",
            ) from exc

    async def get(self, path: str, params: QueryParams = ()) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self.request("PATCH", path, body=body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def stream_events(self, after: int) -> AsyncGenerator[JsonObject, None]:
        """Yield events from the WebSocket stream until the server closes it.

        Raises `ApiError` if the server refuses the upgrade (bad token, say) and
        `ServerUnreachable` if it cannot be reached or the connection breaks. A message that is
        not a JSON object is logged and skipped: one bad frame does not end the stream.
        """
        url = self.url_for("/events/stream")
        try:
            async with self.session.ws_connect(
                url,
                params={"after": str(after)},
                heartbeat=_STREAM_HEARTBEAT_S,
                timeout=_STREAM_TIMEOUT,
            ) as ws:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        event = _parse_event(message.data)
                        if event is not None:
                            yield event
                    elif message.type is aiohttp.WSMsgType.ERROR:
                        raise ServerUnreachable(self.base_url, f"stream error: {ws.exception()}")
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status >= 500:
                raise ServerUnreachable(self.base_url, f"HTTP {exc.status} {exc.message}") from exc
            raise ApiError(exc.status, "stream_refused", _handshake_message(exc)) from exc
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise ServerUnreachable(self.base_url, describe_connection_error(exc)) from exc


def _handshake_message(exc: aiohttp.WSServerHandshakeError) -> str:
    if exc.status == 401:
        return "the server rejected the token (HTTP 401)"
    if exc.status == 403:
        return "this token may not read events (HTTP 403)"
    return f"the server refused the event stream: HTTP {exc.status} {exc.message}".rstrip()


def _parse_event(data: str) -> JsonObject | None:
    try:
        event = json.loads(data)
    except ValueError:
        logger.warning("ignoring a stream message that is not JSON: %.80r", data)
        return None
    if not isinstance(event, dict):
        logger.warning("ignoring a stream message that is not an object: %.80r", data)
        return None
    return event
