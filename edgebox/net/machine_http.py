"""The machine-facing HTTP server (port 5248): what booting machines and their agents reach.

Boot scripts, kernels, images and the agent API arrive with the network-boot work; for now
it answers a health check so that an installer or a load balancer can tell it is up.
"""

from __future__ import annotations

from aiohttp import web

from edgebox import __version__


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


def build_machine_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/health", health)
    return app
