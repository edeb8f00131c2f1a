"""What every call of the agent's machine API shares: the per-boot bearer token, the error
shape the agent reads (`{"error", "message"}` with a non-2xx status), JSON bodies, and uploads
read in chunks keeping only their tail. Used by machine_http (enlist, heartbeat, status),
script_http (commissioning scripts) and deploy_http (deploy, erase).

`machine_errors` is the machine port's middleware: under `/machine/` every error is that JSON
shape (aiohttp's own 405 and 413 included, each keeping its headers), and anywhere on the port
an unexpected exception is a JSON 500 whose message names the log line with the traceback,
never aiohttp's plain-text page.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from edgebox.domain.errors import NotFound, StorageUnavailable
from edgebox.domain.input_limits import JsonInputError, decode_json
from edgebox.services.boot_service import AgentAuthError, AgentCall, AgentInputError, BootService

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A call, given the request, the authenticated caller and the raw boot token.
Call = Callable[[web.Request, AgentCall, str], Awaitable[web.StreamResponse]]

_KINDS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
}
_CODES = {
    401: "unauthorized",
    403: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
}


AGENT_PREFIX = "/machine/"


@web.middleware
async def machine_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(AGENT_PREFIX):
            raise
        if exc.content_type == "application/json":
            raise
        return _json_error(exc)
    except ConnectionError:
        raise  # the client went away, maybe mid-answer: there is no one to answer
    except Exception:
        ref = secrets.token_hex(4)
        log.exception("internal error ref=%s method=%s path=%s", ref, request.method, request.path)
        message = f"internal error; the server log has the details under ref={ref}"
        return web.json_response({"error": "internal", "message": message}, status=500)


def _json_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusal (405, 413, 404...) in the agent's shape, with its headers."""
    message = f"{exc.status} {exc.reason}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{exc.method} is not allowed here (allowed: {allowed})"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = "the request body is too large"
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    body = {"error": _CODES.get(exc.status, "bad_request"), "message": message}
    return web.json_response(body, status=exc.status, headers=headers)


_BODY_HEADERS = frozenset({"content-type", "content-length"})


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def agent_error(status: int, message: str, *, max_size: int = 0) -> web.HTTPException:
    """The error the agent reads; 413 needs the upload limit (`max_size`)."""
    body = json.dumps({"error": _CODES.get(status, "bad_request"), "message": message})
    if status == 413:
        return web.HTTPRequestEntityTooLarge(
            max_size, max_size + 1, text=body, content_type="application/json"
        )
    return _KINDS[status](text=body, content_type="application/json")


@web.middleware
async def storage_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A write the database cannot take now is a 503 the agent (or iPXE) retries, not a 500
    with a traceback per request: the writer already logged the episode."""
    try:
        return await handler(request)
    except StorageUnavailable as exc:
        log.debug("machine request not served path=%s error=%s", request.path, exc)
        body = json.dumps({"error": "storage_unavailable", "message": str(exc)})
        return web.Response(
            status=503,
            text=body,
            content_type="application/json",
            headers={"Retry-After": str(exc.retry_after)},
        )


def guarded(boot: BootService, call: Call, conflicts: tuple[type[Exception], ...] = ()) -> Handler:
    """Authenticate the boot token, run `call`, and turn refusals into the agent's errors:
    401/403 for the token, 400 for bad input, 404 for what is not there, 409 for `conflicts`
    (a call the machine's state does not allow)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        token = bearer_token(request)
        try:
            caller = await boot.authenticate(token or None, request.remote or "")
            return await call(request, caller, token)
        except AgentAuthError as exc:
            log.warning("agent refused remote=%s path=%s reason=%s", request.remote,
                        request.path, exc)  # fmt: skip
            raise agent_error(exc.status, str(exc)) from None
        except AgentInputError as exc:
            raise agent_error(400, str(exc)) from None
        except NotFound as exc:
            raise agent_error(404, str(exc)) from None
        except conflicts as exc:
            raise agent_error(409, str(exc)) from None

    return handler


async def json_body(request: web.Request) -> dict[str, object]:
    """The body as a JSON object (empty: `{}`), within `decode_json`'s limits: at most 64
    levels deep, finite numbers, 64-bit integers; AgentInputError (a 400) otherwise."""
    raw = await request.read()
    try:
        body = decode_json(raw or b"{}")
    except JsonInputError as exc:
        raise AgentInputError(f"the body is {exc}") from None
    if not isinstance(body, dict):
        raise AgentInputError("the body must be a JSON object")
    return body


async def read_tail(
    request: web.Request, keep: int, most: int, too_big: Callable[[], web.HTTPException]
) -> tuple[bytes, int]:
    """The body's last `keep` bytes and its full size, read in chunks; past `most` bytes the
    upload is refused with `too_big()`."""
    kept = bytearray()
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > most:
            raise too_big()
        kept += chunk
        if len(kept) > 2 * keep:
            del kept[: len(kept) - keep]
    return bytes(kept[-keep:]), size
