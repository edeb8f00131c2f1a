"""The machine-facing HTTP server (port 5248): what booting machines and their agents reach.

- `GET /boot/ipxe?mac=…`: the iPXE script for that machine, rendered from its state now.
- `GET /boot-resources/<digest>/vmlinuz|initrd.gz` and `GET /loaders/<name>`: files, with
  Range support (aiohttp's FileResponse, sendfile underneath).
- `POST /machine/v1/enlist|heartbeat|status`: the agent's API, authenticated by the per-boot
  token from the kernel command line; the script calls of commissioning and testing are in
  `script_http.py`, those of deploy and erase (and the cloud-init seed) in `deploy_http.py`.
- `GET /images/<sha256>`, `GET /images/manifests/<name>`: the image cache (`image_http.py`).
- `GET /health`.
Every boot step is an event on the MAC's boot timeline.
"""

from __future__ import annotations

import logging
import math
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from edgebox import __version__
from edgebox.domain.errors import StorageUnavailable
from edgebox.domain.identifiers import parse_mac
from edgebox.domain.models import MachineFilter
from edgebox.domain.rate_limit import SourceLimiter
from edgebox.net.agent_http import (
    agent_error,
    bearer_token,
    json_body,
    machine_errors,
    storage_unavailable,
)
from edgebox.net.deploy_http import add_deploy_routes
from edgebox.net.image_http import add_image_routes
from edgebox.net.script_http import SCRIPT_AGENT, add_script_routes
from edgebox.services.boot_service import AgentAuthError, AgentInputError, BootService
from edgebox.services.deploy_agent import DeployAgent
from edgebox.services.image_service import ImageService
from edgebox.services.machine_service import MachineService
from edgebox.services.script_agent import ScriptAgent, boot_id

log = logging.getLogger(__name__)

BOOT = web.AppKey("edgebox_boot", BootService)
MACHINES = web.AppKey("edgebox_machines", MachineService)
KERNEL_FILES = {"vmlinuz": "kernel", "initrd.gz": "initrd"}


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


def _boot(request: web.Request) -> BootService:
    boot = request.app.get(BOOT)
    if boot is None:
        raise web.HTTPNotFound(text="network boot is not configured on this edgebox\n")
    return boot


async def ipxe_script(request: web.Request) -> web.Response:
    boot = _boot(request)
    try:
        mac = parse_mac(request.query.get("mac", ""))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"#!ipxe\necho edgebox: bad ?mac=: {exc}\nexit 1\n") from None
    page = await request.app[MACHINES].query(MachineFilter(mac=mac), 1)
    machine = page.items[0] if page.items else None
    base = f"{request.scheme}://{request.host}"
    script = await boot.script(mac, base, machine, request.remote or "")
    return web.Response(text=script, content_type="text/plain")


async def boot_token(request: web.Request) -> web.Response:
    """The agent's token as an initrd: once, to the address its script went to; anyone else
    (or a second fetch) gets a 404 that says nothing about whether it existed."""
    boot = _boot(request)
    archive = boot.token_cpio(request.match_info["claim"], request.remote or "")
    if archive is None:
        log.warning("boot token fetch refused remote=%s", request.remote)
        raise web.HTTPNotFound(text="no such boot token\n")
    return web.Response(body=archive, content_type="application/octet-stream",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


async def boot_resource(request: web.Request) -> web.StreamResponse:
    boot = _boot(request)
    resource = boot.resources.get(request.match_info["digest"])
    name = request.match_info["name"]
    path = resource.file(name) if resource else None
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="no such boot resource\n")
    await _fetched(request, boot, KERNEL_FILES[name], name)
    return web.FileResponse(path)


async def loader(request: web.Request) -> web.StreamResponse:
    boot = _boot(request)
    path = boot.loader_path(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="no such loader (see the edgebox log for missing loaders)\n")
    await _fetched(request, boot, "loader", path.name)
    return web.FileResponse(path)


async def _fetched(request: web.Request, boot: BootService, step: str, detail: str) -> None:
    try:
        start = request.http_range.start
    except ValueError:
        return  # a malformed Range: FileResponse answers 416, nothing was fetched
    if start not in (None, 0):
        return  # a resumed download is the same step
    mac = request.query.get("mac")
    try:
        mac = parse_mac(mac) if mac else None
    except ValueError:
        mac = None
    try:
        await boot.fetched(step, mac, request.remote or "", detail)
    except StorageUnavailable as exc:  # a timeline step is a record, not a condition to boot
        log.debug("boot step not recorded step=%s mac=%s error=%s", step, mac, exc)


async def agent_call(request: web.Request) -> web.Response:
    boot = _boot(request)
    token = bearer_token(request)
    try:
        call = await boot.authenticate(token or None, request.remote or "")
        body = await json_body(request)
        scripts = request.app.get(SCRIPT_AGENT)
        if request.match_info["call"] == "heartbeat" and scripts and scripts.serves(call):
            return web.json_response(await scripts.heartbeat(call, boot_id(token)))
        handler = {
            "enlist": boot.enlist,
            "heartbeat": boot.heartbeat,
            "status": boot.agent_status,
        }[request.match_info["call"]]
        answer = await handler(call, body)
    except AgentAuthError as exc:
        log.warning("agent refused remote=%s reason=%s", request.remote, exc)
        raise agent_error(exc.status, str(exc)) from None
    except AgentInputError as exc:
        raise agent_error(400, str(exc)) from None
    return web.json_response(answer)


def source_limit(limiter: SourceLimiter) -> Middleware:
    """Requests without a credential count against their address's bucket; past it, a 429
    that says when to come back (docs/security.md)."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        source = request.remote or ""
        if "Authorization" not in request.headers and not limiter.allow(source, time.monotonic()):
            wait = max(1, math.ceil(limiter.retry_after(source)))
            log.debug("rate limited remote=%s path=%s", source, request.path)
            raise web.HTTPTooManyRequests(
                text=f"too many requests from {source}; retry in {wait} s\n",
                headers={"Retry-After": str(wait)},
            )
        return await handler(request)

    return limit


def build_machine_app(
    boot: BootService | None = None,
    machines: MachineService | None = None,
    scripts: ScriptAgent | None = None,
    images: ImageService | None = None,
    deploys: DeployAgent | None = None,
    *,
    limiter: SourceLimiter | None = None,
) -> web.Application:
    # Outermost first: errors become JSON (the agent's API) or a 500 with a log reference;
    # then the per-address limit; then a database that cannot take writes is a 503.
    middlewares: list[Middleware] = [machine_errors, storage_unavailable]
    if limiter is not None and limiter.enabled:
        middlewares.insert(1, source_limit(limiter))
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=middlewares)
    if boot is not None and machines is not None:
        app[BOOT] = boot
        app[MACHINES] = machines
        if scripts is not None:
            add_script_routes(app, boot, scripts)
        if deploys is not None:
            add_deploy_routes(app, boot, deploys)
    app.router.add_get("/health", health)
    app.router.add_get("/boot/ipxe", ipxe_script)
    app.router.add_get("/boot/token/{claim:[A-Za-z0-9_-]{1,64}}", boot_token)
    app.router.add_get(
        "/boot-resources/{digest:[0-9a-f]{64}}/{name:vmlinuz|initrd.gz}", boot_resource
    )
    app.router.add_get("/loaders/{name:[A-Za-z0-9._-]+}", loader)
    app.router.add_post("/machine/v1/{call:enlist|heartbeat|status}", agent_call)
    add_image_routes(app, images)
    return app
