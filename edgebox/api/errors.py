"""Every failure leaves the API as JSON: `{"error": code, "message": text[, "field": name]}`.

Handlers raise domain errors (`NotFound`, `Forbidden`, `Conflict`, `InvalidInput`,
`IllegalTransition`) or `ApiError`; the middleware maps them to a status code
(`StorageUnavailable`, a database that cannot take writes now, is a 503 with Retry-After).
aiohttp's own HTTP errors (unknown path, wrong method) are rewritten to the same shape, and
anything unexpected becomes a 500 whose message points to the log line that holds the
traceback — never the traceback itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from edgebox.domain.errors import (
    Conflict,
    EdgeboxError,
    Forbidden,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from edgebox.domain.lifecycle import IllegalTransition

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


# Headers an error status needs (RFC 9110 §11.6.1, §15.5.22).
_STATUS_HEADERS = {
    401: {"WWW-Authenticate": 'Bearer realm="edgebox"'},
    426: {"Upgrade": "websocket", "Connection": "Upgrade"},
}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, str] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    headers = {**_STATUS_HEADERS.get(status, {}), **(headers or {})}
    return web.json_response(body, status=status, headers=headers or None)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, EdgeboxError, IllegalTransition) as exc:
        return _known(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = error_response(exc.status, code, _http_message(request, exc))
        # Keep what the refusal says in headers: a 405's Allow (RFC 9110 §15.5.6).
        for name, value in exc.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response
    except Exception:
        ref = secrets.token_hex(4)
        log.exception("internal error ref=%s method=%s path=%s", ref, request.method, request.path)
        return error_response(
            500, "internal", f"internal error; the server log has the details under ref={ref}"
        )


def _known(exc: Exception) -> web.Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field)
    if isinstance(exc, InvalidInput):
        return error_response(400, "bad_request", str(exc), exc.field)
    if isinstance(exc, StorageUnavailable):
        # Not the caller's fault and not a bug: the writer logged it (once per episode), and
        # the same request succeeds once the storage is back.
        retry = {"Retry-After": str(exc.retry_after)}
        return error_response(503, "storage_unavailable", str(exc), headers=retry)
    status, code = next(
        (pair for kind, pair in _DOMAIN_ERRORS if isinstance(exc, kind)), (400, "bad_request")
    )
    return error_response(status, code, str(exc))


_DOMAIN_ERRORS: list[tuple[type[Exception], tuple[int, str]]] = [
    (NotFound, (404, "not_found")),
    (Forbidden, (403, "forbidden")),
    (IllegalTransition, (409, "illegal_action")),
    (Conflict, (409, "conflict")),
]


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no such endpoint: {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    if exc.status == 413:
        return "the request body is too large"
    return exc.text or exc.reason
