"""Deploy and erase on the machine-facing port (docs/deploy-contract.md §2 and §3).

- `POST /machine/v1/deploy/plan|progress|log|done` and `/machine/v1/erase/plan|progress|log|done`:
  the agent's calls, with the per-boot bearer token. Plans are `KEY=value` text; the rest
  answer one-line JSON; an error is a non-2xx status with `{"error", "message"}` (409: the call
  is not allowed in the deployment's step).
- `GET /cloud-init/<system_id>/<seed secret>/meta-data|user-data|vendor-data|network-config`
  and `POST /cloud-init/<system_id>/<seed secret>/phone-home`: the deployed OS's NoCloud-net
  seed. No token: the deploy's seed secret in the URL, which the agent wrote to the deployed
  disk's seed partition. The same 404 for a wrong secret and for a machine that is neither
  Deploying nor Deployed, so a caller learns nothing; user-data is given only while the OS
  boots and a short grace after (docs/security.md).

Log uploads are read in chunks and only their last 4 MiB kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from edgebox.domain.deployment import AgentCallRefused
from edgebox.net.agent_http import Handler, agent_error, guarded, json_body, read_tail
from edgebox.services.boot_service import AgentCall, BootService
from edgebox.services.deploy_agent import LOG_LIMIT, DeployAgent

DEPLOY_AGENT = web.AppKey("edgebox_deploy_agent", DeployAgent)
MAX_LOG_UPLOAD: Final = 256 * 1024 * 1024  # bytes read (and mostly dropped) from one upload
_CALLS = "plan|progress|log|done"
_DOCUMENTS = "meta-data|user-data|vendor-data|network-config"


def add_deploy_routes(app: web.Application, boot: BootService, agent: DeployAgent) -> None:
    app[DEPLOY_AGENT] = agent
    app.router.add_post(f"/machine/v1/deploy/{{call:{_CALLS}}}", _guarded(boot, agent, _deploy))
    app.router.add_post(f"/machine/v1/erase/{{call:{_CALLS}}}", _guarded(boot, agent, _erase))
    seed = "/cloud-init/{system_id:[a-z0-9]{1,64}}/{secret:[A-Za-z0-9_-]{1,64}}"
    app.router.add_get(f"{seed}/{{name:{_DOCUMENTS}}}", _document)
    app.router.add_post(f"{seed}/phone-home", _phone_home)


DeployCall = Callable[[web.Request, DeployAgent, AgentCall], Awaitable[web.StreamResponse]]


def _guarded(boot: BootService, agent: DeployAgent, call: DeployCall) -> Handler:
    async def run(request: web.Request, caller: AgentCall, token: str) -> web.StreamResponse:
        return await call(request, agent, caller)

    return guarded(boot, run, conflicts=(AgentCallRefused,))


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
    body = await json_body(request)
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
    body = await json_body(request)
    if name == "progress":
        await agent.erase_progress(call, body)
        return web.json_response({"ok": True})
    return web.json_response(await agent.erase_done(call, body))


async def _document(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    info = request.match_info
    text = await agent.document(info["system_id"], info["secret"], info["name"], _base(request))
    if text is None:
        raise web.HTTPNotFound(text="no deploy of this machine\n")
    return web.Response(text=text)


async def _phone_home(request: web.Request) -> web.StreamResponse:
    await request.read()
    info = request.match_info
    if not await _agent(request).phone_home(info["system_id"], info["secret"]):
        raise web.HTTPNotFound(text="no deploy of this machine\n")
    return web.json_response({"ok": True})


def _agent(request: web.Request) -> DeployAgent:
    agent = request.app.get(DEPLOY_AGENT)
    if agent is None:  # pragma: no cover - the routes exist only with the agent
        raise web.HTTPNotFound()
    return agent


async def _read_tail(request: web.Request) -> tuple[bytes, int]:
    return await read_tail(request, LOG_LIMIT, MAX_LOG_UPLOAD, _too_big)


def _too_big() -> web.HTTPException:
    return agent_error(400, f"a log upload may be at most {MAX_LOG_UPLOAD} bytes")
