"""Allocate, deploy and release over the API.

- `POST /allocate` `{"constraints": {arch, min_cores, min_memory, tags, not_tags, pool, zone},
  "count": N}`: N Ready machines, allocated to the caller, or a 409 that says how many matched
  and why the others did not (all or nothing).
- `POST /deploy` and `POST /release`: many machines by list and/or filter (the selection of
  every bulk endpoint, `machine_selection.py`); each is accepted or refused with the reason, and
  the answer names the rollout that `GET /rollouts/{id}` follows (deploys in waves of `wave`,
  stopping after `max_failures` failures).
- One machine: `POST /machines/{id}/actions/allocate|deploy|release|abort` (`machines.py`
  routes them here with `deploy_action`), with the same options in the body.
- `GET /machines/{id}/deployment`: its latest deploy or release: step, progress, error, and
  the tail of the agent's log.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.deploy_shapes import (
    BULK_ANSWER,
    DEPLOY_OPTIONS,
    DEPLOYMENT,
    ROLLOUT,
    bulk_json,
    deployment_view_json,
    rollout_json,
)
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import machine_json
from edgebox.api.machine_selection import SELECTION_RULE, SELECTION_SCHEMA, selection
from edgebox.api.request_input import (
    bad,
    json_object,
    opt_object,
    opt_str,
    opt_str_list,
    path_id,
    query_int,
)
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import ID, STR, STR_LIST, ref, whole
from edgebox.domain.allocation import Constraints
from edgebox.domain.auth import Permission, Role
from edgebox.domain.deployment import (
    DeployInputError,
    DeployRequest,
    ReleaseRequest,
    parse_erase,
)
from edgebox.domain.lifecycle import Action, Status
from edgebox.services.deploy_parts import DeployParts
from edgebox.services.deploy_views import LOG_TAIL

DEPLOY_ACTIONS: Final = (Action.ALLOCATE, Action.DEPLOY, Action.RELEASE)
_ABORTED_HERE: Final = frozenset({Status.DEPLOYING, Status.DISK_ERASING})
_DEPLOY_FIELDS: Final = ("image", "user_data", "ssh_keys", "hostname", "disk", "comment")
_CONSTRAINTS: Final = ("arch", "min_cores", "min_memory", "tags", "not_tags", "pool", "zone")
MAX_INT: Final = 2**31
MAX_ALLOCATE: Final = 10_000  # AllocationService's limit
MAX_LOG_TAIL: Final = 4 * 1024 * 1024


def parts(request: web.Request) -> DeployParts:
    found = context(request).deploy
    if found is None:
        raise ApiError(503, "unavailable", "deploying is not running in this edgebox")
    return found


def _opt_int(
    body: dict[str, Any], field: str, default: int, low: int = 0, high: int = MAX_INT
) -> int:
    if field not in body:
        return default
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(field, f"expected a whole number from {low} to {high}, got {value!r:.40}")
    return value


def _deploy_request(request: web.Request, body: dict[str, Any]) -> DeployRequest:
    image = opt_str(body, "image")
    if not image:
        raise bad("image", "name the image to deploy (see GET /api/v1/images)")
    return DeployRequest(
        actor=principal(request).user,
        image=image,
        user_data=opt_str(body, "user_data") or "",
        ssh_keys=tuple(opt_str_list(body, "ssh_keys") or ()),
        hostname=opt_str(body, "hostname"),
        disk=opt_str(body, "disk") or "",
        comment=opt_str(body, "comment") or "",
    )


def _release_request(request: web.Request, body: dict[str, Any]) -> ReleaseRequest:
    try:
        erase = parse_erase(opt_str(body, "erase"))
    except DeployInputError as exc:
        raise bad(exc.field, exc.detail) from None
    who = principal(request)
    return ReleaseRequest(
        who.user, erase, opt_str(body, "comment") or "", admin=who.role is Role.ADMIN
    )


def _constraints(body: dict[str, Any]) -> Constraints:
    raw = opt_object(body, "constraints") or {}
    unknown = sorted(set(raw) - set(_CONSTRAINTS))
    if unknown:
        raise bad(f"constraints.{unknown[0]}", f"unknown field (known: {', '.join(_CONSTRAINTS)})")
    fields = {}
    for name in ("min_cores", "min_memory"):
        try:
            fields[name] = _opt_int(raw, name, 0) or None
        except ApiError as exc:
            raise bad(f"constraints.{name}", exc.message.split(": ", 1)[1]) from None
    return Constraints(
        arch=opt_str(raw, "arch"),
        min_cores=fields["min_cores"],
        min_memory_mib=fields["min_memory"],
        tags=tuple(opt_str_list(raw, "tags") or ()),
        not_tags=tuple(opt_str_list(raw, "not_tags") or ()),
        pool=opt_str(raw, "pool"),
        zone=opt_str(raw, "zone"),
    )


# -- handlers ---------------------------------------------------------------------------------


async def allocate(request: web.Request) -> web.Response:
    body = await json_object(request, {"constraints", "count", "comment"})
    count = _opt_int(body, "count", 1, low=1, high=MAX_ALLOCATE)
    machines = await parts(request).allocation.allocate(
        _constraints(body), count, principal(request).user, opt_str(body, "comment") or ""
    )
    return web.json_response({"machines": [machine_json(m) for m in machines]})


async def bulk_deploy(request: web.Request) -> web.Response:
    body = await json_object(
        request, {"machines", "filter", "wave", "max_failures", *_DEPLOY_FIELDS}
    )
    flt, system_ids = selection(body)
    bulk = await parts(request).deploys.deploy_many(
        _deploy_request(request, body),
        flt,
        system_ids,
        wave=_opt_int(body, "wave", 0),
        max_failures=_opt_int(body, "max_failures", 0),
    )
    return web.json_response(bulk_json(bulk))


async def bulk_release(request: web.Request) -> web.Response:
    body = await json_object(request, {"machines", "filter", "erase", "comment"})
    flt, system_ids = selection(body)
    bulk = await parts(request).releases.release_many(
        _release_request(request, body), flt, system_ids
    )
    return web.json_response(bulk_json(bulk))


async def deploy_action(request: web.Request, action: Action) -> web.Response | None:
    """allocate, deploy, release and (of a deploy or an erase) abort on one machine; None: an
    abort that is not about a deploy or an erase (commissioning's)."""
    system_id = request.match_info["system_id"]
    deploy = context(request).deploy
    if action is Action.ABORT:
        if deploy is None:
            return None
        machine = await context(request).machines.get(system_id)
        if machine.status not in _ABORTED_HERE:
            return None
        body = await json_object(request, {"comment"})
        actor, comment = principal(request).user, opt_str(body, "comment") or ""
        if machine.status is Status.DEPLOYING:
            after = await deploy.deploys.abort(system_id, actor, comment)
        else:
            after = await deploy.releases.abort(system_id, actor, comment)
        return web.json_response(machine_json(after))
    found = parts(request)
    if action is Action.ALLOCATE:
        body = await json_object(request, {"comment"})
        after = await found.allocation.allocate_one(
            system_id, principal(request).user, opt_str(body, "comment") or ""
        )
    elif action is Action.DEPLOY:
        body = await json_object(request, set(_DEPLOY_FIELDS))
        after = await found.deploys.deploy(system_id, _deploy_request(request, body))
    else:
        body = await json_object(request, {"erase", "comment"})
        after = await found.releases.release(system_id, _release_request(request, body))
    return web.json_response(machine_json(after))


async def get_deployment(request: web.Request) -> web.Response:
    tail = query_int(request, "log", LOG_TAIL, 0, MAX_LOG_TAIL)
    view = await parts(request).views.deployment(request.match_info["system_id"], tail)
    return web.json_response(deployment_view_json(view))


async def get_rollout(request: web.Request) -> web.Response:
    view = await parts(request).views.rollout(path_id(request, "rollout_id"))
    return web.json_response(rollout_json(view))


_ID = Param("system_id", STR, "the machine's system id", where="path", required=True)
_WHOLE = whole(0, MAX_INT)

ROUTES = [
    Route(
        "POST",
        "/allocate",
        allocate,
        Permission.OPERATE,
        "Allocate Ready machines that match constraints to the caller: all of `count`, or none",
        "deploy",
        body={
            "type": "object",
            "properties": {
                "constraints": {
                    "type": "object",
                    "properties": {
                        "arch": STR,
                        "min_cores": {**_WHOLE, "description": "0: any"},
                        "min_memory": {**_WHOLE, "description": "MiB; 0: any"},
                        "tags": STR_LIST,
                        "not_tags": STR_LIST,
                        "pool": STR,
                        "zone": STR,
                    },
                    "additionalProperties": False,
                },
                "count": whole(1, MAX_ALLOCATE, "how many machines (default 1)"),
                "comment": STR,
            },
            "additionalProperties": False,
        },
        responses={
            200: {
                "type": "object",
                "properties": {"machines": {"type": "array", "items": ref("Machine")}},
            }
        },
    ),
    Route(
        "POST",
        "/deploy",
        bulk_deploy,
        Permission.OPERATE,
        "Deploy an image on many machines, by list and/or filter, at once or in waves",
        "deploy",
        body={
            "type": "object",
            "properties": {
                **SELECTION_SCHEMA,
                **{k: v for k, v in DEPLOY_OPTIONS.items() if k != "erase"},
                "wave": {**_WHOLE, "description": "machines per wave (0: all at once)"},
                "max_failures": {
                    **_WHOLE,
                    "description": "stop after this many failures (0: never)",
                },
                "comment": STR,
            },
            **SELECTION_RULE,
            "required": ["image"],
            "additionalProperties": False,
        },
        responses={200: BULK_ANSWER},
    ),
    Route(
        "POST",
        "/release",
        bulk_release,
        Permission.OPERATE,
        "Release many machines, by list and/or filter, erasing their disks as asked (each"
        " only by its owner or an admin)",
        "deploy",
        body={
            "type": "object",
            "properties": {**SELECTION_SCHEMA, "erase": DEPLOY_OPTIONS["erase"], "comment": STR},
            **SELECTION_RULE,
            "additionalProperties": False,
        },
        responses={200: BULK_ANSWER},
    ),
    Route(
        "GET",
        "/machines/{system_id}/deployment",
        get_deployment,
        Permission.READ,
        "A machine's latest deploy or release: step, progress, error and its agent's log",
        "deploy",
        params=[
            _ID,
            Param("log", whole(0, MAX_LOG_TAIL), f"bytes of the log's tail (default {LOG_TAIL})"),
        ],
        responses={200: DEPLOYMENT},
    ),
    Route(
        "GET",
        "/rollouts/{rollout_id:[0-9]+}",
        get_rollout,
        Permission.READ,
        "A bulk deploy or release: its machines, their states and failures",
        "deploy",
        params=[Param("rollout_id", ID, "the rollout's id", where="path", required=True)],
        responses={200: ROLLOUT},
    ),
]
