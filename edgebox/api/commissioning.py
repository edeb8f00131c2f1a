"""Commissioning and testing over the API: start either on many machines at once, read a
machine's results (with output, one result at a time), and the fleet summary.

One machine is commissioned, tested or aborted through its actions endpoint
(`POST /machines/{system_id}/actions/commission|test|abort`, see `machines.py`); the bulk
endpoint takes the same selection as the other bulk endpoints (`machine_selection.py`) and
answers per machine: accepted, or refused with the reason.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import iso
from edgebox.api.machine_selection import SELECTION_RULE, SELECTION_SCHEMA, selection
from edgebox.api.request_input import (
    MAX_ID,
    bad,
    json_object,
    opt_object,
    opt_str,
    opt_str_list,
    path_id,
    query_int,
)
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import BOOL, CURSOR, ID, INT, STR, TIME, nullable
from edgebox.domain.auth import Permission
from edgebox.domain.script_runs import RunKind, ScriptResult, ScriptRun
from edgebox.services.commissioning_service import (
    MAX_TESTS,
    BulkItem,
    CommissioningService,
    RunRequest,
)

SHOWN_OUTPUT = 4 * 1024 * 1024


def commissioning(request: web.Request) -> CommissioningService:
    service = context(request).commissioning
    if service is None:
        raise ApiError(503, "unavailable", "commissioning is not running in this edgebox")
    return service


RUN_FIELDS = frozenset({"tests", "comment", "parameters"})
MAX_PARAMETERS = 256  # values in one request, over all its scripts


def run_request(request: web.Request, body: dict[str, Any]) -> RunRequest:
    """The options of a commission or test request: `tests` (names; absent: the defaults),
    `parameters` (script name -> parameter name -> value) and `comment`."""
    tests = opt_str_list(body, "tests")
    if tests is not None and len(tests) > MAX_TESTS:  # before a bulk request refuses each
        raise bad("tests", f"at most {MAX_TESTS} tests in one run")
    return RunRequest(
        actor=principal(request).user,
        tests=tuple(tests) if tests is not None else None,
        comment=opt_str(body, "comment") or "",
        parameters=_parameters(opt_object(body, "parameters")),
    )


def _parameters(value: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The shape only; names, types and ranges are checked against each script's metadata."""
    if value is None:
        return {}
    example = '{"memory-test": {"fraction": 0.5}}'
    count = 0
    for script, values in value.items():
        if not isinstance(values, dict):
            raise bad(f"parameters.{script}", f"expected an object of parameter values: {example}")
        for name, one in values.items():
            count += 1
            if one is None or isinstance(one, dict | list):
                raise bad(f"parameters.{script}.{name}", "expected a string, number or boolean")
    if count > MAX_PARAMETERS:
        raise bad("parameters", f"at most {MAX_PARAMETERS} values in one request")
    return value


def run_json(run: ScriptRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind.value,
        "state": run.state.value,
        "requested_by": run.requested_by,
        "created_at": iso(run.created_at),
        "finished_at": iso(run.finished_at),
    }


def result_json(result: ScriptResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "run": result.run_id,
        "script": result.name,
        "version": result.version,
        "device": result.device,
        "interface": result.interface,
        "per_device": result.expand or None,  # waiting to be expanded (storage, interface)
        "parameters": dict(result.parameters),
        "status": result.status.value,
        "exit_code": result.exit_code,
        "runtime": result.runtime,
        "results": dict(result.results),
        "note": result.note,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at),
    }


def _item_json(item: BulkItem) -> dict[str, Any]:
    return {
        "system_id": item.system_id,
        "hostname": item.hostname,
        "accepted": item.accepted,
        "status": item.status,
        "reason": item.reason,
    }


async def bulk_start(request: web.Request) -> web.Response:
    body = await json_object(request, {"action", "machines", "filter", *RUN_FIELDS})
    action = opt_str(body, "action")
    kinds = {"commission": RunKind.COMMISSIONING, "test": RunKind.TESTING}
    if action not in kinds:
        raise bad("action", "expected commission or test")
    flt, system_ids = selection(body)
    items = await commissioning(request).start_many(
        kinds[action], run_request(request, body), flt, system_ids
    )
    accepted = sum(1 for i in items if i.accepted)
    return web.json_response(
        {
            "items": [_item_json(i) for i in items],
            "accepted": accepted,
            "refused": len(items) - accepted,
        }
    )


async def machine_results(request: web.Request) -> web.Response:
    system_id = request.match_info["system_id"]
    run_id = query_int(request, "run", 0, 0, MAX_ID)
    service = commissioning(request)
    view = await service.results(system_id, run_id or None)
    runs = await service.runs(system_id)
    script = request.query.get("script")
    results = view.results if view else []
    if script:
        results = [r for r in results if r.name == script]
    return web.json_response(
        {
            "system_id": system_id,
            "run": run_json(view.run) if view else None,
            "results": [result_json(r) for r in results],
            "runs": [run_json(r) for r in runs],
        }
    )


async def machine_result(request: web.Request) -> web.Response:
    system_id = request.match_info["system_id"]
    result_id = path_id(request, "result_id")
    detail = await commissioning(request).result(system_id, result_id)
    body = result_json(detail.result)
    for stream in ("stdout", "stderr", "result"):
        data, size = detail.output.get(stream, (b"", 0))
        text = data[-SHOWN_OUTPUT:].decode("utf-8", "replace")
        if stream == "stderr" and detail.result.note:
            text += ("" if not text or text.endswith("\n") else "\n") + (
                f"edgebox: {detail.result.note}\n"
            )
        key = "result_file" if stream == "result" else stream
        body[key] = text
        body[f"{key}_size"] = size
    body["kind"] = detail.run.kind.value
    return web.json_response(body)


async def summary(request: web.Request) -> web.Response:
    fleet = await commissioning(request).summary()
    failures: dict[str, dict[str, Any]] = {}
    for script, status, machines in fleet.troubles:
        entry = failures.setdefault(script, {"script": script, "machines": 0})
        entry[status] = machines
        entry["machines"] += machines
    return web.json_response(
        {
            "statuses": fleet.statuses,
            "running": fleet.running_runs,
            "failures": sorted(failures.values(), key=lambda e: (-e["machines"], e["script"])),
        }
    )


RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": INT,
        "run": INT,
        "script": STR,
        "version": INT,
        "device": STR,
        "interface": STR,
        "per_device": nullable(STR),
        "parameters": {"type": "object"},
        "status": {
            "type": "string",
            "enum": [
                "pending",
                "running",
                "passed",
                "failed",
                "timedout",
                "degraded",
                "skipped",
                "aborted",
            ],
        },
        "exit_code": nullable(INT),
        "runtime": nullable({"type": "number"}),
        "results": {"type": "object"},
        "note": STR,
        "started_at": nullable(TIME),
        "finished_at": nullable(TIME),
    },
    "required": ["id", "script", "version", "status"],
}
RUN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": INT,
        "kind": {"type": "string", "enum": ["commissioning", "testing"]},
        "state": {"type": "string", "enum": ["running", "passed", "failed", "aborted"]},
        "requested_by": STR,
        "created_at": TIME,
        "finished_at": nullable(TIME),
    },
}
_ID = Param("system_id", STR, "the machine's system id", where="path", required=True)
RUN_OPTIONS: dict[str, Any] = {
    "tests": {
        "type": "array",
        "items": STR,
        "maxItems": MAX_TESTS,
        "description": "testing scripts to run (absent: the defaults; [] none)",
    },
    "parameters": {
        "type": "object",
        "description": "script parameters for this run, by script then parameter name, e.g. "
        '{"memory-test": {"fraction": 0.5}}; the rest keep their defaults',
        "additionalProperties": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
            },
        },
    },
    "comment": STR,
}

ROUTES = [
    Route(
        "POST",
        "/commissioning",
        bulk_start,
        Permission.OPERATE,
        "Commission or test many machines, by list and/or filter; each is accepted or refused",
        "commissioning",
        body={
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["commission", "test"]},
                **SELECTION_SCHEMA,
                **RUN_OPTIONS,
            },
            **SELECTION_RULE,
            "required": ["action"],
            "additionalProperties": False,
        },
        responses={
            200: {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "system_id": STR,
                                "hostname": STR,
                                "accepted": BOOL,
                                "status": STR,
                                "reason": STR,
                            },
                        },
                    },
                    "accepted": INT,
                    "refused": INT,
                },
            }
        },
    ),
    Route(
        "GET",
        "/commissioning/summary",
        summary,
        Permission.READ,
        "Machines per status, and failures by script in each machine's latest run",
        "commissioning",
        responses={
            200: {
                "type": "object",
                "properties": {
                    "statuses": {"type": "object", "additionalProperties": INT},
                    "running": INT,
                    "failures": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    ),
    Route(
        "GET",
        "/machines/{system_id}/results",
        machine_results,
        Permission.READ,
        "A machine's script results: its latest run, or ?run=ID",
        "commissioning",
        params=[
            _ID,
            Param("run", CURSOR, "a run id (default, or 0: the latest run)"),
            Param("script", STR, "only the results of this script"),
        ],
        responses={
            200: {
                "type": "object",
                "properties": {
                    "system_id": STR,
                    "run": {**RUN_SCHEMA, "nullable": True},
                    "results": {"type": "array", "items": RESULT_SCHEMA},
                    "runs": {"type": "array", "items": RUN_SCHEMA},
                },
            }
        },
    ),
    Route(
        "GET",
        "/machines/{system_id}/results/{result_id:[0-9]+}",
        machine_result,
        Permission.READ,
        "One result with its output (stdout, stderr, the result file)",
        "commissioning",
        params=[_ID, Param("result_id", ID, "the result's id", where="path", required=True)],
        responses={
            200: {
                **RESULT_SCHEMA,
                "properties": {
                    **RESULT_SCHEMA["properties"],
                    "stdout": STR,
                    "stderr": STR,
                    "result_file": STR,
                    "stdout_size": INT,
                    "stderr_size": INT,
                    "result_file_size": INT,
                },
            }
        },
    ),
]
