"""Power endpoints: a machine's BMC (set, show, test, remove) and power operations, for one
machine or many. Operations are queued and answered 202 with the operation to follow."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.machine_selection import SELECTION_RULE, SELECTION_SCHEMA, selection
from edgebox.api.request_input import (
    bad,
    json_object,
    opt_object,
    opt_str,
    query_list,
    req_str,
    whole_number,
)
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import BOOL, ID, INT, STR, repeated
from edgebox.domain.auth import Permission
from edgebox.domain.power import PowerOp
from edgebox.drivers.power.registry import DRIVER_NAMES
from edgebox.services.bmc_settings import BmcView
from edgebox.services.power_service import BulkItem, PowerService
from edgebox.storage.power_store import PowerOpRecord

MAX_OPS_QUERY = 300  # ids in one query; within the API's request line (server.py)


def _power(request: web.Request) -> PowerService:
    power = context(request).power
    if power is None:
        raise ApiError(503, "unavailable", "power control is not running in this edgebox")
    return power


def bmc_json(view: BmcView) -> dict[str, Any]:
    """A BMC, never a secret: `has_password`, `has_<option>` for each secret option (`has_k_g`,
    `has_headers`, with `header_names`), and the other options."""
    shown = {
        "driver": view.driver,
        "address": view.address,
        "username": view.username,
        "has_password": view.has_password,
        **view.secrets,
        "options": dict(view.options),
    }
    if view.dropped:
        shown["secrets_dropped"] = list(view.dropped)
    return shown


def op_json(op: PowerOpRecord) -> dict[str, Any]:
    return {
        "id": op.id,
        "system_id": op.system_id,
        "op": op.op.value,
        "state": op.state.value,
        "attempts": op.attempts,
        "error": op.error,
        "requested_by": op.requested_by,
        "created_at": op.created_at,
        "updated_at": op.updated_at,
    }


def _item_json(item: BulkItem) -> dict[str, Any]:
    return {
        "system_id": item.system_id,
        "hostname": item.hostname,
        "op": op_json(item.op) if item.op else None,
        "refused": item.refused,
    }


def _op(body: dict[str, Any]) -> PowerOp:
    text = req_str(body, "op")
    try:
        return PowerOp(text)
    except ValueError:
        known = ", ".join(op.value for op in PowerOp)
        raise bad("op", f"unknown operation {text!r} (known: {known})") from None


async def get_bmc(request: web.Request) -> web.Response:
    system_id = request.match_info["system_id"]
    view = await _power(request).bmc(system_id)
    if view is None:
        raise ApiError(404, "not_found", f"machine {system_id} has no BMC; set one with PUT")
    return web.json_response(bmc_json(view))


async def put_bmc(request: web.Request) -> web.Response:
    body = await json_object(request, {"driver", "address", "username", "password", "options"})
    options = opt_object(body, "options") or {}
    view = await _power(request).set_bmc(
        request.match_info["system_id"],
        principal(request).user,
        driver=req_str(body, "driver"),
        address=opt_str(body, "address") or "",
        username=opt_str(body, "username") or "",
        password=opt_str(body, "password"),
        options=options,
    )
    return web.json_response(bmc_json(view))


async def delete_bmc(request: web.Request) -> web.Response:
    await _power(request).delete_bmc(request.match_info["system_id"], principal(request).user)
    return web.Response(status=204)


async def test_bmc(request: web.Request) -> web.Response:
    result = await _power(request).test_bmc(request.match_info["system_id"])
    return web.json_response(
        {
            "ok": result.ok,
            "power_state": result.power_state.value,
            "error": result.error,
            "fatal": result.fatal,
        }
    )


async def get_power(request: web.Request) -> web.Response:
    system_id = request.match_info["system_id"]
    machine = await context(request).machines.get(system_id)
    ops = await _power(request).recent_ops(system_id)
    return web.json_response(
        {"power_state": machine.power_state.value, "ops": [op_json(op) for op in ops]}
    )


async def post_power(request: web.Request) -> web.Response:
    body = await json_object(request, {"op"})
    op = await _power(request).request(
        request.match_info["system_id"], _op(body), principal(request).user
    )
    return web.json_response(op_json(op), status=202)


async def confirm_power(request: web.Request) -> web.Response:
    done = await _power(request).confirm(request.match_info["system_id"], principal(request).user)
    return web.json_response({"ops": [op_json(op) for op in done]})


async def bulk_power(request: web.Request) -> web.Response:
    body = await json_object(request, {"op", "machines", "filter"})
    op = _op(body)
    flt, system_ids = selection(body)
    items = await _power(request).request_many(
        op, principal(request).user, flt=flt, system_ids=system_ids
    )
    return web.json_response({"items": [_item_json(i) for i in items]}, status=202)


async def get_ops(request: web.Request) -> web.Response:
    texts = query_list(request, "id")
    if not texts or len(texts) > MAX_OPS_QUERY:
        raise bad("id", f"give from 1 to {MAX_OPS_QUERY} operation ids")
    ids = [whole_number("id", text, 1) for text in texts]
    ops = await _power(request).ops(ids)
    return web.json_response({"items": [op_json(op) for op in ops]})


_ID = Param("system_id", STR, "the machine's system id", where="path", required=True)
_OP_NAMES = {"type": "string", "enum": [op.value for op in PowerOp]}
_BMC = {
    "type": "object",
    "properties": {
        "driver": STR,
        "address": STR,
        "username": STR,
        "has_password": BOOL,
        "has_k_g": {**BOOL, "description": "ipmi: a BMC key (k_g) is set (never shown)"},
        "has_headers": {**BOOL, "description": "webhook: extra headers are set"},
        "header_names": {
            "type": "array",
            "items": STR,
            "description": "webhook: the names of the extra headers (never their values)",
        },
        "secrets_dropped": {
            "type": "array",
            "items": STR,
            "description": "after a PUT: stored secrets dropped because the driver, address or"
            " a target option changed and they were not given again",
        },
        "options": {
            "type": "object",
            "description": "the options that are not secret",
        },
    },
}
_OP = {
    "type": "object",
    "properties": {
        "id": INT,
        "system_id": STR,
        "op": _OP_NAMES,
        "state": STR,
        "attempts": INT,
        "error": STR,
        "requested_by": STR,
        "created_at": {"type": "number"},
        "updated_at": {"type": "number"},
    },
}
_OPS = {"type": "object", "properties": {"items": {"type": "array", "items": _OP}}}

ROUTES = [
    Route(
        "GET",
        "/machines/{system_id}/bmc",
        get_bmc,
        Permission.READ,
        "Show a machine's BMC (never its password)",
        "power",
        params=[_ID],
        responses={200: _BMC},
    ),
    Route(
        "PUT",
        "/machines/{system_id}/bmc",
        put_bmc,
        Permission.OPERATE,
        "Set a machine's BMC: driver, address, credentials, driver options",
        "power",
        params=[_ID],
        body={
            "type": "object",
            "properties": {
                "driver": {"type": "string", "enum": list(DRIVER_NAMES)},
                "address": STR,
                "username": STR,
                "password": {
                    **STR,
                    "description": "omit to keep the stored password (dropped if the driver,"
                    ' address or a target option changes); "" removes it',
                },
                "options": {
                    "type": "object",
                    "description": "driver options; a secret one (k_g, headers) left out keeps"
                    " its stored value like the password",
                },
            },
            "required": ["driver"],
            "additionalProperties": False,
        },
        responses={200: _BMC},
    ),
    Route(
        "DELETE",
        "/machines/{system_id}/bmc",
        delete_bmc,
        Permission.OPERATE,
        "Remove a machine's BMC",
        "power",
        params=[_ID],
        responses={204: None},
    ),
    Route(
        "POST",
        "/machines/{system_id}/bmc/test",
        test_bmc,
        Permission.OPERATE,
        "Query the BMC now: does it answer, are the credentials right?",
        "power",
        params=[_ID],
        responses={
            200: {
                "type": "object",
                "properties": {"ok": BOOL, "power_state": STR, "error": STR, "fatal": BOOL},
            }
        },
    ),
    Route(
        "GET",
        "/machines/{system_id}/power",
        get_power,
        Permission.READ,
        "A machine's power state and its recent power operations",
        "power",
        params=[_ID],
        responses={
            200: {
                "type": "object",
                "properties": {"power_state": STR, "ops": {"type": "array", "items": _OP}},
            }
        },
    ),
    Route(
        "POST",
        "/machines/{system_id}/power",
        post_power,
        Permission.OPERATE,
        "Queue a power operation (on, on-network, off, soft-off, cycle, query)",
        "power",
        params=[_ID],
        body={
            "type": "object",
            "properties": {"op": _OP_NAMES},
            "required": ["op"],
            "additionalProperties": False,
        },
        responses={202: _OP},
    ),
    Route(
        "POST",
        "/machines/{system_id}/power/confirm",
        confirm_power,
        Permission.OPERATE,
        "Say that what a waiting (manual) power operation asked for was done",
        "power",
        params=[_ID],
        responses={200: {"type": "object", "properties": {"ops": {"type": "array"}}}},
    ),
    Route(
        "POST",
        "/power",
        bulk_power,
        Permission.OPERATE,
        "Queue a power operation on many machines, by list and/or filter",
        "power",
        body={
            "type": "object",
            "properties": {"op": _OP_NAMES, **SELECTION_SCHEMA},
            **SELECTION_RULE,
            "required": ["op"],
            "additionalProperties": False,
        },
        responses={202: {"type": "object", "properties": {"items": {"type": "array"}}}},
    ),
    Route(
        "GET",
        "/power/ops",
        get_ops,
        Permission.READ,
        "Power operations by id, to follow their progress",
        "power",
        params=[
            Param(
                "id",
                {**repeated(ID), "minItems": 1, "maxItems": MAX_OPS_QUERY},
                "operation ids; repeat or comma-separate",
                required=True,
            )
        ],
        responses={200: _OPS},
    ),
]
