"""A fake edgebox API on a real socket, for driving the CLI in tests.

The fake follows the API contract (paths, bodies, errors, cursors, the event WebSocket) with
in-memory state, and records every request so that tests can check what the CLI sent. It runs
in a thread with its own event loop, because each CLI command runs its own `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from click.testing import CliRunner, Result

from edgebox.cli.main import cli

TOKEN = "ebx_test_secret"
SITE = {"site_id": "0b0e9f5c-1111-2222-3333-444455556666", "name": "lab-1"}
NOW = "2026-11-26T05:38:53.123456Z"


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    auth: str | None


def error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def make_machine(system_id: str, **fields: Any) -> dict[str, Any]:
    machine: dict[str, Any] = {
        "system_id": system_id,
        "hostname": f"node-{system_id}",
        "status": "new",
        "previous_status": None,
        "arch": "",
        "pool": "default",
        "zone": "default",
        "owner": None,
        "locked": False,
        "power_state": "unknown",
        "tags": [],
        "interfaces": [],
        "hardware": None,
        "created_at": NOW,
        "updated_at": NOW,
        "status_changed_at": NOW,
    }
    machine.update(fields)
    return machine


@dataclass
class FakeEdgebox:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    inventories: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    # (method, path) -> (status, JSON body): answer this instead of the normal handler.
    overrides: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    # Close the n-th stream connection after this many messages (first list item: first one).
    close_streams_after: list[int] = field(default_factory=list)
    stream_afters: list[int] = field(default_factory=list)
    stream_connected: threading.Event = field(default_factory=threading.Event)
    loop: asyncio.AbstractEventLoop | None = None
    _subscribers: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)

    def add_machine(self, system_id: str, **fields: Any) -> dict[str, Any]:
        self.machines[system_id] = make_machine(system_id, **fields)
        return self.machines[system_id]

    def add_event(self, machine: str | None = None, **fields: Any) -> dict[str, Any]:
        seq = len(self.events) + 1
        event = {
            "seq": seq,
            "time": NOW,
            "type": "machine.updated",
            "level": "info",
            "machine": machine,
            "message": f"event {seq}",
            "data": {},
        }
        event.update(fields)
        self.events.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    def publish(self, **fields: Any) -> None:
        """Add an event from another thread, pushing it to connected streams."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: self.add_event(**fields))

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def last(self, method: str, path_prefix: str = "/api/v1") -> Recorded:
        for recorded in reversed(self.requests):
            if recorded.method == method and recorded.path.startswith(path_prefix):
                return recorded
        raise AssertionError(f"no {method} {path_prefix} request in {self.requests}")

    # -- the app --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_authorize])
        api = "/api/v1"
        app.router.add_get(f"{api}/health", self._health)
        app.router.add_get(f"{api}/site", self._site)
        app.router.add_get(f"{api}/machines", self._list_machines)
        app.router.add_post(f"{api}/machines", self._create_machine)
        app.router.add_get(f"{api}/machines/{{sid}}", self._get_machine)
        app.router.add_get(f"{api}/machines/{{sid}}/inventory", self._get_inventory)
        app.router.add_patch(f"{api}/machines/{{sid}}", self._patch_machine)
        app.router.add_delete(f"{api}/machines/{{sid}}", self._delete_machine)
        app.router.add_post(f"{api}/machines/{{sid}}/actions/{{action}}", self._action)
        app.router.add_get(f"{api}/events", self._list_events)
        app.router.add_get(f"{api}/events/stream", self._stream)
        app.router.add_get(f"{api}/tokens", self._list_tokens)
        app.router.add_post(f"{api}/tokens", self._create_token)
        app.router.add_delete(f"{api}/tokens/{{tid}}", self._revoke_token)
        app.on_shutdown.append(self._close_streams)
        return app

    @web.middleware
    async def _record_and_authorize(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        auth = request.headers.get("Authorization")
        self.requests.append(
            Recorded(request.method, request.path, list(request.query.items()), body, auth)
        )
        if request.path != "/api/v1/health" and auth != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "missing or invalid API token")
        if (request.method, request.path) in self.overrides:
            status, payload = self.overrides[(request.method, request.path)]
            if isinstance(payload, str):
                return web.Response(status=status, text=payload, content_type="text/html")
            return web.json_response(payload, status=status)
        response: web.StreamResponse = await handler(request)
        return response

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "version": "0.1.0", "site_id": SITE["site_id"], "site_name": "lab-1"}
        )

    async def _site(self, request: web.Request) -> web.Response:
        return web.json_response({**SITE, "created_at": NOW, "version": "0.1.0"})

    def _machine_or_404(self, request: web.Request) -> dict[str, Any]:
        sid = request.match_info["sid"]
        if sid not in self.machines:
            raise web.HTTPNotFound(
                text=f'{{"error":"not_found","message":"no machine {sid}"}}',
                content_type="application/json",
            )
        return self.machines[sid]

    async def _list_machines(self, request: web.Request) -> web.Response:
        query = request.query
        limit = int(query.get("limit", "100"))
        if not 1 <= limit <= 1000:
            return error(400, "invalid", "limit must be 1..1000", "limit")
        chosen = sorted(self.machines.values(), key=lambda m: m["system_id"])
        chosen = [m for m in chosen if _matches(m, query)]
        total = len(chosen)
        after = query.get("after")
        if after:
            chosen = [m for m in chosen if m["system_id"] > after]
        page = chosen[:limit]
        more = len(chosen) > limit
        return web.json_response(
            {"items": page, "total": total, "next": page[-1]["system_id"] if more else None}
        )

    async def _create_machine(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not body.get("mac"):
            return error(400, "invalid", "mac is required", "mac")
        sid = f"m{len(self.machines) + 1:05d}"
        macs = [body["mac"], *body.get("macs", [])]
        interfaces = [{"mac": m, "name": "", "boot": i == 0} for i, m in enumerate(macs)]
        fields = {k: body[k] for k in ("hostname", "arch", "pool", "zone", "tags") if k in body}
        machine = self.add_machine(sid, interfaces=interfaces, **fields)
        return web.json_response(machine, status=201)

    async def _get_machine(self, request: web.Request) -> web.Response:
        return web.json_response(self._machine_or_404(request))

    async def _get_inventory(self, request: web.Request) -> web.Response:
        machine = self._machine_or_404(request)
        inventory = self.inventories.get(machine["system_id"])
        if inventory is None:
            return error(404, "not_found", f"machine {machine['system_id']} has reported none")
        return web.json_response(inventory)

    async def _patch_machine(self, request: web.Request) -> web.Response:
        machine = self._machine_or_404(request)
        machine.update(await request.json())
        return web.json_response(machine)

    async def _delete_machine(self, request: web.Request) -> web.Response:
        machine = self._machine_or_404(request)
        del self.machines[machine["system_id"]]
        return web.Response(status=204)

    async def _action(self, request: web.Request) -> web.Response:
        machine = self._machine_or_404(request)
        action, body = request.match_info["action"], await request.json()
        if action == "lock" and machine["status"] == "new":
            return error(409, "illegal_action", "cannot lock a machine that is new: deploy it")
        if action in ("lock", "unlock"):
            machine["locked"] = action == "lock"
        elif action == "mark-broken":
            machine["previous_status"], machine["status"] = machine["status"], "broken"
        elif action == "tag":
            kept = [t for t in machine["tags"] if t not in body.get("remove", [])]
            machine["tags"] = kept + [t for t in body.get("add", []) if t not in kept]
        elif action in ("set-pool", "set-zone"):
            key = action.removeprefix("set-")
            machine[key] = body[key]
        else:
            return error(400, "unknown_action", f"no action {action!r}")
        return web.json_response(machine)

    async def _list_events(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "100"))
        machine = request.query.get("machine")
        items = [e for e in self.events if e["seq"] > after]
        items = [e for e in items if machine is None or e["machine"] == machine][:limit]
        return web.json_response({"items": items, "last_seq": len(self.events)})

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        after = int(request.query.get("after", "0"))
        budget = self.close_streams_after.pop(0) if self.close_streams_after else None
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        for old in self.events:
            if old["seq"] > after:
                queue.put_nowait(old)
        self._subscribers.append(queue)
        self.stream_afters.append(after)
        self.stream_connected.set()
        # Read as well as write, so that the client's close frame is answered at once.
        reader = asyncio.create_task(self._read_until_closed(ws, queue))
        try:
            while budget is None or budget > 0:
                event = await queue.get()
                if event is None or ws.closed:
                    break
                await ws.send_json(event)
                budget = None if budget is None else budget - 1
        finally:
            self._subscribers.remove(queue)
            await ws.close()
            await reader
        return ws

    async def _read_until_closed(
        self, ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        async for _ in ws:
            pass
        queue.put_nowait(None)

    async def _close_streams(self, app: web.Application) -> None:
        for queue in self._subscribers:
            queue.put_nowait(None)

    async def _list_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self.tokens})

    async def _create_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        token = {
            "id": len(self.tokens) + 1,
            "name": body["name"],
            "user": body.get("user", "admin"),
            "role": body.get("role", "operator"),
            "prefix": "ebx_NeWt",
            "created_at": NOW,
            "last_used_at": None,
            "revoked_at": None,
        }
        self.tokens.append(token)
        return web.json_response({**token, "token": "ebx_NeWtOkEnSeCrEt"}, status=201)

    async def _revoke_token(self, request: web.Request) -> web.Response:
        for token in self.tokens:
            if str(token["id"]) == request.match_info["tid"]:
                token["revoked_at"] = NOW
                return web.json_response(token)
        return error(404, "not_found", f"no token {request.match_info['tid']}")


def _matches(machine: dict[str, Any], query: Any) -> bool:
    statuses = query.getall("status", [])
    tags, not_tags = query.getall("tag", []), query.getall("not_tag", [])
    macs = [i["mac"] for i in machine["interfaces"]]
    return (
        (not statuses or machine["status"] in statuses)
        and all(t in machine["tags"] for t in tags)
        and not any(t in machine["tags"] for t in not_tags)
        and query.get("pool", machine["pool"]) == machine["pool"]
        and query.get("zone", machine["zone"]) == machine["zone"]
        and query.get("hostname", machine["hostname"]) == machine["hostname"]
        and ("mac" not in query or query["mac"] in macs)
    )


class ServerThread:
    """Runs an aiohttp app on 127.0.0.1 (a free port) in a thread with its own event loop."""

    def __init__(self, fake: FakeEdgebox) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(fake.app(), shutdown_timeout=1)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        host, port = self.runner.addresses[0][:2]
        self.fake.loop = self.loop
        return f"http://{host}:{port}"

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


Invoke = Callable[..., Result]


def make_invoker(env: dict[str, str]) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, **extra_env: str) -> Result:
        result = runner.invoke(cli, list(args), env={**env, **extra_env}, input=input)
        # A crash would otherwise look like exit code 1 with the traceback hidden.
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke
