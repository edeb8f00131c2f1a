"""Deploy and erase on the machine-facing port (docs/deploy-contract.md §2 and §3).

- `POST /machine/v1/deploy/plan|progress|log|done` and `/machine/v1/erase/plan|progress|log|done`:
  the agent's calls, with the per-boot bearer token. Plans are `KEY=value` text; the rest
  answer one-line JSON; an error is a non-2xx status with `{"error", "message"}` (409: the call
  is not allowed in the deployment's step).
- `GET /cloud-init/<system_id>/meta-data|user-data|vendor-data|network-config` and
  `POST /cloud-init/<system_id>/phone-home`: the deployed OS's NoCloud-net seed, no token;
  404 for a machine that is neither Deploying nor Deployed.

Log uploads are read in chunks and only their last 4 MiB kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from edgebox.domain.deployment import AgentCallRefused
from edgebox.domain.errors import NotFound
from edgebox.services.boot_service import AgentAuthError, AgentCall, AgentInputError, BootService
from edgebox.services.deploy_agent import LOG_LIMIT, DeployAgent

log = logging.getLogger(__name__)

DEPLOY_AGENT = web.AppKey("edgebox_deploy_agent", DeployAgent)
MAX_LOG_UPLOAD: Final = 256 * 1024 * 1024  # bytes read (and mostly dropped) from one upload
_CALLS = "plan|progress|log|done"
_DOCUMENTS = "meta-data|user-data|vendor-data|network-config"
_ERRORS: Final[dict[int, tuple[type[web.HTTPException], str]]] = {
    400: (web.HTTPBadRequest, "bad_request"),
    401: (web.HTTPUnauthorized, "unauthorized"),
    403: (web.HTTPForbidden, "unauthorized"),
    404: (web.HTTPNotFound, "not_found"),
    409: (web.HTTPConflict, "conflict"),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_deploy_routes(app: web.Application, boot: BootService, agent: DeployAgent) -> None:
    app[DEPLOY_AGENT] = agent
    app.router.add_post(f"/machine/v1/deploy/{{call:{_CALLS}}}", _guarded(boot, agent, _deploy))
    app.router.add_post(f"/machine/v1/erase/{{call:{_CALLS}}}", _guarded(boot, agent, _erase))
    app.router.add_get(
        f"/cloud-init/{{system_id:[a-z0-9]{{1,64}}}}/{{name:{_DOCUMENTS}}}", _document
    )
    app.router.add_post("/cloud-init/{system_id:[a-z0-9]{1,64}}/phone-home", _phone_home)


Call = Callable[[web.Request, DeployAgent, AgentCall], Awaitable[web.StreamResponse]]


def _guarded(boot: BootService, agent: DeployAgent, call: Call) -> Handler:
    """Authenticate the boot token, run `call`, and turn refusals into the agent's errors."""

    async def handler(request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        try:
            caller = await boot.authenticate(token or None)
            return await call(request, agent, caller)
        except AgentAuthError as exc:
            log.warning("agent refused remote=%s path=%s reason=%s", request.remote,
                        request.path, exc)  # fmt: skip
            raise _error(403 if "not " in str(exc) else 401, str(exc)) from None
        except AgentInputError as exc:
            raise _error(400, str(exc)) from None
        except NotFound as exc:
            raise _error(404, str(exc)) from None
        except AgentCallRefused as exc:
            raise _error(409, str(exc)) from None

    return handler


def _error(status: int, message: str) -> web.HTTPException:
    kind, code = _ERRORS[status]
    return kind(
        text=json.dumps({"error": code, "message": message}), content_type="application/json"
    )


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _deploy(request: web.Request, agent: DeployAgent, call: AgentCall) -> web.StreamResponse:
    name = request.match_info["call"]
    if name == "plan":
        await request.read()
        return web.Response(text=await agent.deploy_plan(call, _base(request)))
    if name == "log":
        data, size = await _read_tail(request)
        await agent.deploy_log(call, data, size)
        return web.json_response({"ok": True})
    body = await _json_body(request)
    if name == "progress":
        await agent.deploy_progress(call, body)
        return web.json_response({"ok": True})
    return web.json_response(await agent.deploy_done(call, body))


async def _erase(request: web.Request, agent: DeployAgent, call: AgentCall) -> web.StreamResponse:
    name = request.match_info["call"]
    if name == "plan":
        await request.read()
        return web.Response(text=await agent.erase_plan(call))
    if name == "log":
        data, size = await _read_tail(request)
        await agent.erase_log(call, data, size)
        return web.json_response({"ok": True})
    body = await _json_body(request)
    if name == "progress":
        await agent.erase_progress(call, body)
        return web.json_response({"ok": True})
    return web.json_response(await agent.erase_done(call, body))


async def _document(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    text = await agent.document(
        request.match_info["system_id"], request.match_info["name"], _base(request)
    )
    if text is None:
        raise web.HTTPNotFound(text="no deploy of this machine\n")
    return web.Response(text=text)


async def _phone_home(request: web.Request) -> web.StreamResponse:
    await request.read()
    if not await _agent(request).phone_home(request.match_info["system_id"]):
        raise web.HTTPNotFound(text="no deploy of this machine\n")
    return web.json_response({"ok": True})


def _agent(request: web.Request) -> DeployAgent:
    agent = request.app.get(DEPLOY_AGENT)
    if agent is None:  # pragma: no cover - the routes exist only with the agent
        raise web.HTTPNotFound()
    return agent


async def _read_tail(request: web.Request) -> tuple[bytes, int]:
    """The body's last LOG_LIMIT bytes and its full size, reading it in chunks."""
    kept = bytearray()
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_LOG_UPLOAD:
            raise _error(400, f"a log upload may be at most {MAX_LOG_UPLOAD} bytes")
        kept += chunk
        if len(kept) > 2 * LOG_LIMIT:
            del kept[: len(kept) - LOG_LIMIT]
    return bytes(kept[-LOG_LIMIT:]), size


async def _json_body(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise AgentInputError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AgentInputError("the body must be a JSON object")
    return body
