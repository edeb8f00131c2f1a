"""The machine API's script calls (docs/commissioning-contract.md §1), on the machine-facing port.

- `POST /machine/v1/plan`: text lines `RESULT_ID PARALLEL TIMEOUT_S NAME` (tab-separated).
- `POST /machine/v1/results/{id}/script|env|start|stdout|stderr|result|done`.
- `POST /machine/v1/throughput?bytes=N`: N bytes, for the network-throughput test.

The agent is POSIX sh and busybox wget: its answers are plain text or a one-line JSON object,
and an error is a non-2xx status with `{"error", "message"}`. Output uploads are read in chunks
and only their last 4 MiB kept, so a chatty script costs no more memory than that.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Final

from aiohttp import web

from edgebox.domain.errors import NotFound
from edgebox.domain.script_results import IllegalResultEvent
from edgebox.services.boot_service import AgentAuthError, AgentCall, AgentInputError, BootService
from edgebox.services.script_agent import OUTPUT_LIMIT, RESULT_FILE_LIMIT, ScriptAgent, boot_id

log = logging.getLogger(__name__)

SCRIPT_AGENT = web.AppKey("edgebox_script_agent", ScriptAgent)
# The network test may move a lot: 16 GiB is the built-in network-throughput's largest size.
MAX_THROUGHPUT: Final = 16 * 1024**3
MAX_UPLOAD: Final = 1024**3  # bytes read (and mostly dropped) from one output upload
_BLOCK_SIZE: Final = 1024 * 1024
_RESULT_CALLS = "script|env|start|stdout|stderr|result|done"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_script_routes(app: web.Application, boot: BootService, agent: ScriptAgent) -> None:
    app[SCRIPT_AGENT] = agent
    app.router.add_post("/machine/v1/plan", _guarded(boot, agent, _plan))
    app.router.add_post(
        f"/machine/v1/results/{{result_id:[0-9]{{1,18}}}}/{{call:{_RESULT_CALLS}}}",
        _guarded(boot, agent, _result_call),
    )
    app.router.add_post("/machine/v1/throughput", _guarded(boot, agent, _throughput))


Call = Callable[[web.Request, ScriptAgent, AgentCall, str], Awaitable[web.StreamResponse]]


def _guarded(boot: BootService, agent: ScriptAgent, call: Call) -> Handler:
    """Authenticate the boot token, run `call`, and turn refusals into the agent's errors."""

    async def handler(request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        try:
            caller = await boot.authenticate(token or None)
            return await call(request, agent, caller, boot_id(token))
        except AgentAuthError as exc:
            log.warning("agent refused remote=%s path=%s reason=%s", request.remote,
                        request.path, exc)  # fmt: skip
            raise _error(403 if "not " in str(exc) else 401, str(exc)) from None
        except AgentInputError as exc:
            raise _error(400, str(exc)) from None
        except NotFound as exc:
            raise _error(404, str(exc)) from None
        except IllegalResultEvent as exc:
            raise _error(409, str(exc)) from None

    return handler


def _error(status: int, message: str) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        413: web.HTTPRequestEntityTooLarge,
    }
    code = {401: "unauthorized", 403: "unauthorized", 404: "not_found", 409: "conflict"}
    body = json.dumps({"error": code.get(status, "bad_request"), "message": message})
    kind = kinds[status]
    if kind is web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(MAX_UPLOAD, MAX_UPLOAD + 1, text=body,
                                             content_type="application/json")  # fmt: skip
    return kind(text=body, content_type="application/json")


_OK = {"ok": True}


async def _plan(
    request: web.Request, agent: ScriptAgent, call: AgentCall, boot: str
) -> web.StreamResponse:
    return web.Response(text=await agent.plan(call, boot), content_type="text/plain")


async def _result_call(
    request: web.Request, agent: ScriptAgent, call: AgentCall, boot: str
) -> web.StreamResponse:
    result_id = int(request.match_info["result_id"])
    name = request.match_info["call"]
    if name == "script":
        return web.Response(
            body=await agent.script(call, result_id), content_type="application/octet-stream"
        )
    if name == "env":
        return web.Response(text=await agent.env(call, result_id), content_type="text/plain")
    if name == "start":
        await _drain(request)
        await agent.start(call, boot, result_id)
    elif name in ("stdout", "stderr"):
        data, size = await _read_tail(request, OUTPUT_LIMIT)
        await agent.output(call, result_id, name, data, size)
    elif name == "result":
        data, size = await _read_tail(request, RESULT_FILE_LIMIT)
        if size > RESULT_FILE_LIMIT:
            raise AgentInputError(f"the result file is larger than {RESULT_FILE_LIMIT} bytes")
        await agent.result_file(call, result_id, data)
    else:
        await agent.done(call, result_id, await _json_body(request))
    return web.json_response(_OK)


async def _throughput(
    request: web.Request, agent: ScriptAgent, call: AgentCall, boot: str
) -> web.StreamResponse:
    """N bytes from one pre-made block, written as memoryviews: no per-request allocation."""
    agent.check_serves(call)
    text = request.query.get("bytes", "")
    if not text.isdigit() or int(text) > MAX_THROUGHPUT:
        raise AgentInputError(f"bytes: expected a whole number from 0 to {MAX_THROUGHPUT}")
    remaining = int(text)
    received = await _drain(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(remaining),
            "X-Edgebox-Received": str(received),
        }
    )
    await response.prepare(request)
    block = memoryview(_block())
    while remaining > 0:
        size = min(remaining, _BLOCK_SIZE)
        await response.write(block[:size])
        remaining -= size
    await response.write_eof()
    return response


@cache
def _block() -> bytes:
    # Random, so that no compression or deduplication on the path flatters the figure.
    return os.urandom(_BLOCK_SIZE)


async def _read_tail(request: web.Request, limit: int) -> tuple[bytes, int]:
    """The body's last `limit` bytes and its full size, reading it in chunks."""
    kept = bytearray()
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_UPLOAD:
            raise _error(413, f"an upload may be at most {MAX_UPLOAD} bytes")
        kept += chunk
        if len(kept) > 2 * limit:
            del kept[: len(kept) - limit]
    return bytes(kept[-limit:]), size


async def _drain(request: web.Request) -> int:
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
    return size


async def _json_body(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise AgentInputError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AgentInputError("the body must be a JSON object")
    return body
