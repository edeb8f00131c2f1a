"""What every call of the agent's machine API shares: the per-boot bearer token, the error
shape the agent reads (`{"error", "message"}` with a non-2xx status), JSON bodies, and uploads
read in chunks keeping only their tail. Used by machine_http (enlist, heartbeat, status),
script_http (commissioning scripts) and deploy_http (deploy, erase)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from edgebox.domain.errors import NotFound, StorageUnavailable
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
_CODES = {401: "unauthorized", 403: "unauthorized", 404: "not_found", 409: "conflict"}


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
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise AgentInputError("the body is not valid JSON") from None
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
