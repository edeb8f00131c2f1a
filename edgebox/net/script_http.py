"""The machine API's script calls (docs/commissioning-contract.md §1), on the machine-facing port.

- `POST /machine/v1/plan`: text lines `RESULT_ID PARALLEL TIMEOUT_S NAME` (tab-separated).
- `POST /machine/v1/results/{id}/script|env|start|stdout|stderr|result|done`.
- `POST /machine/v1/throughput?bytes=N`: N bytes, for the network-throughput test.

The agent is POSIX sh and busybox wget: its answers are plain text or a one-line JSON object,
and an error is a non-2xx status with `{"error", "message"}`. Output uploads are read in chunks
and only their last 4 MiB kept, so a chatty script costs no more memory than that.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Final

from aiohttp import web

from edgebox.domain.script_results import IllegalResultEvent
from edgebox.net.agent_http import Handler, agent_error, guarded, json_body, read_tail
from edgebox.services.boot_service import AgentCall, AgentInputError, BootService
from edgebox.services.script_agent import OUTPUT_LIMIT, RESULT_FILE_LIMIT, ScriptAgent, boot_id

SCRIPT_AGENT = web.AppKey("edgebox_script_agent", ScriptAgent)
# The network test may move a lot: 16 GiB is the built-in network-throughput's largest size.
MAX_THROUGHPUT: Final = 16 * 1024**3
MAX_UPLOAD: Final = 1024**3  # bytes read (and mostly dropped) from one output upload
_BLOCK_SIZE: Final = 1024 * 1024
_RESULT_CALLS = "script|env|start|stdout|stderr|result|done"


def add_script_routes(app: web.Application, boot: BootService, agent: ScriptAgent) -> None:
    app[SCRIPT_AGENT] = agent
    app.router.add_post("/machine/v1/plan", _guarded(boot, agent, _plan))
    app.router.add_post(
        f"/machine/v1/results/{{result_id:[0-9]{{1,18}}}}/{{call:{_RESULT_CALLS}}}",
        _guarded(boot, agent, _result_call),
    )
    app.router.add_post("/machine/v1/throughput", _guarded(boot, agent, _throughput))


ScriptCall = Callable[[web.Request, ScriptAgent, AgentCall, str], Awaitable[web.StreamResponse]]


def _guarded(boot: BootService, agent: ScriptAgent, call: ScriptCall) -> Handler:
    async def run(request: web.Request, caller: AgentCall, token: str) -> web.StreamResponse:
        return await call(request, agent, caller, boot_id(token))

    return guarded(boot, run, conflicts=(IllegalResultEvent,))


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
        await agent.done(call, result_id, await json_body(request))
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
    return await read_tail(request, limit, MAX_UPLOAD, _too_big)


def _too_big() -> web.HTTPException:
    return agent_error(413, f"an upload may be at most {MAX_UPLOAD} bytes", max_size=MAX_UPLOAD)


async def _drain(request: web.Request) -> int:
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
    return size
