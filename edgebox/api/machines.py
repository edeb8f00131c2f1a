"""The /machines endpoints: list, create, show, update, delete, and lifecycle actions."""

from __future__ import annotations

from aiohttp import web

from edgebox.api.commissioning import RUN_FIELDS, RUN_OPTIONS, commissioning, run_request
from edgebox.api.context import context
from edgebox.api.deploy import DEPLOY_ACTIONS, deploy_action
from edgebox.api.deploy_shapes import DEPLOY_OPTIONS
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import machine_json
from edgebox.api.request_input import (
    MAX_ID,
    bad,
    json_object,
    opt_str,
    opt_str_list,
    query_enums,
    query_int,
    query_list,
    query_mac,
    req_str,
)
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import (
    CURSOR,
    HOSTNAME,
    MAC,
    NAME,
    NAME_LIST,
    STR,
    STR_LIST,
    enum_of,
    page_of,
    ref,
    repeated,
    whole,
)
from edgebox.domain.auth import Permission, Role
from edgebox.domain.identifiers import parse_mac
from edgebox.domain.lifecycle import Action, Status
from edgebox.domain.models import MachineChanges, MachineFilter
from edgebox.services.commissioning_service import COMMISSIONING_ACTIONS
from edgebox.services.machine_service import AVAILABLE_ACTIONS as MACHINE_ACTIONS
from edgebox.services.machine_service import ActionRequest

MAX_PAGE = 1000
# commission, test and abort start and stop runs of scripts (commissioning_service.py);
# allocate, deploy, release (and abort of a deploy or an erase) are in deploy.py.
AVAILABLE_ACTIONS = (*MACHINE_ACTIONS, *COMMISSIONING_ACTIONS, *DEPLOY_ACTIONS)


def _mac(field: str, text: str) -> str:
    try:
        return parse_mac(text)
    except ValueError as exc:
        raise bad(field, str(exc)) from None


def _filter(request: web.Request) -> MachineFilter:
    return MachineFilter(
        status=tuple(query_enums(request, "status", Status)),
        pool=request.query.get("pool"),
        zone=request.query.get("zone"),
        tags=tuple(query_list(request, "tag")),
        not_tags=tuple(query_list(request, "not_tag")),
        hostname=request.query.get("hostname"),
        mac=query_mac(request),
        owner=request.query.get("owner"),
    )


def page_cursor(request: web.Request) -> int:
    """`after`: the `next` of a previous page (0, the default: from the start)."""
    return query_int(request, "after", 0, 0, MAX_ID)


async def list_machines(request: web.Request) -> web.Response:
    flt = _filter(request)
    limit = query_int(request, "limit", 100, 1, MAX_PAGE)
    page = await context(request).machines.query(flt, limit, page_cursor(request))
    return web.json_response(
        {
            "items": [machine_json(m) for m in page.items],
            "total": page.total,
            "next": str(page.next_after) if page.next_after is not None else None,
        }
    )


async def create_machine(request: web.Request) -> web.Response:
    body = await json_object(request, {"mac", "macs", "hostname", "arch", "pool", "zone", "tags"})
    macs = [_mac("mac", req_str(body, "mac"))]
    macs += [_mac("macs", m) for m in opt_str_list(body, "macs") or []]
    machine = await context(request).machines.create(
        macs,
        principal(request).user,
        hostname=opt_str(body, "hostname"),
        arch=opt_str(body, "arch") or "",
        pool=opt_str(body, "pool") or "default",
        zone=opt_str(body, "zone") or "default",
        tags=opt_str_list(body, "tags") or [],
    )
    location = f"/api/v1/machines/{machine.system_id}"
    return web.json_response(machine_json(machine), status=201, headers={"Location": location})


async def get_machine(request: web.Request) -> web.Response:
    machine = await context(request).machines.get(request.match_info["system_id"])
    return web.json_response(machine_json(machine))


async def get_inventory(request: web.Request) -> web.Response:
    system_id = request.match_info["system_id"]
    inventory = await context(request).machines.inventory(system_id)
    if inventory is None:
        raise ApiError(404, "not_found", f"machine {system_id} has reported no inventory yet")
    return web.json_response(inventory)


async def update_machine(request: web.Request) -> web.Response:
    body = await json_object(request, {"hostname", "pool", "zone", "tags"})
    tags = opt_str_list(body, "tags")
    changes = MachineChanges(
        hostname=opt_str(body, "hostname"),
        pool=opt_str(body, "pool"),
        zone=opt_str(body, "zone"),
        tags=tuple(tags) if tags is not None else None,
    )
    machine = await context(request).machines.update(
        request.match_info["system_id"], changes, principal(request).user
    )
    return web.json_response(machine_json(machine))


async def delete_machine(request: web.Request) -> web.Response:
    who = principal(request)
    await context(request).machines.delete(
        request.match_info["system_id"], who.user, admin=who.role is Role.ADMIN
    )
    return web.Response(status=204)


async def machine_action(request: web.Request) -> web.Response:
    name = request.match_info["action"]
    try:
        action = Action(name)
    except ValueError:
        action = None
    running = AVAILABLE_ACTIONS if context(request).commissioning else MACHINE_ACTIONS
    if context(request).deploy is not None:
        running = (*running, *DEPLOY_ACTIONS, Action.ABORT)
    if action is None or action not in running:
        available = ", ".join(a.value for a in running)
        raise ApiError(404, "not_found", f"no action {name!r}; available actions: {available}")
    if action in DEPLOY_ACTIONS or action is Action.ABORT:
        answer = await deploy_action(request, action)
        if answer is not None:
            return answer
    if action in COMMISSIONING_ACTIONS:
        options = run_request(request, await json_object(request, RUN_FIELDS))
        machine = await commissioning(request).act(request.match_info["system_id"], action, options)
        return web.json_response(machine_json(machine))
    body = await json_object(request, {"comment", "pool", "zone", "add", "remove"})
    action_request = ActionRequest(
        action=action,
        actor=principal(request).user,
        comment=opt_str(body, "comment") or "",
        pool=opt_str(body, "pool"),
        zone=opt_str(body, "zone"),
        add_tags=tuple(opt_str_list(body, "add") or ()),
        remove_tags=tuple(opt_str_list(body, "remove") or ()),
    )
    machine = await context(request).machines.act(request.match_info["system_id"], action_request)
    return web.json_response(machine_json(machine))


_ID = Param("system_id", STR, "the machine's system id", where="path", required=True)
_MACHINE = {200: ref("Machine")}
_BODY_FIELDS = {"hostname": HOSTNAME, "pool": NAME, "zone": NAME, "tags": NAME_LIST}
PAGE_SIZE = Param("limit", whole(1, MAX_PAGE), f"page size, 1 to {MAX_PAGE} (default 100)")
AFTER = Param("after", CURSOR, "the 'next' of the previous page (default 0: the first page)")

ROUTES = [
    Route(
        "GET",
        "/machines",
        list_machines,
        Permission.READ,
        "List machines, filtered and paged by cursor",
        "machines",
        params=[
            Param(
                "status",
                repeated(enum_of(s.value for s in Status)),
                "status to match; repeat or comma-separate for several",
            ),
            Param("pool", STR, "pool name"),
            Param("zone", STR, "zone name"),
            Param("tag", repeated(STR), "a tag the machine must have; repeatable"),
            Param("not_tag", repeated(STR), "a tag the machine must not have; repeatable"),
            Param("hostname", STR, "exact host name"),
            Param("mac", MAC, "a MAC address of one of its interfaces"),
            Param("owner", STR, "the user it is allocated to"),
            PAGE_SIZE,
            AFTER,
        ],
        responses={200: page_of("Machine")},
    ),
    Route(
        "POST",
        "/machines",
        create_machine,
        Permission.OPERATE,
        "Create a machine from its boot MAC address",
        "machines",
        body={
            "type": "object",
            "properties": {
                "mac": {**MAC, "description": "the boot interface"},
                "macs": {
                    "type": "array",
                    "items": MAC,
                    "uniqueItems": True,
                    "description": "its other interfaces (each MAC once)",
                },
                "arch": STR,
                **_BODY_FIELDS,
                "hostname": {
                    **HOSTNAME,
                    "pattern": f"^$|{HOSTNAME['pattern']}",
                    "description": "empty or absent: node-<system_id>",
                },
                "pool": {
                    **NAME,
                    "pattern": f"^$|{NAME['pattern']}",
                    "description": "empty or absent: default",
                },
                "zone": {
                    **NAME,
                    "pattern": f"^$|{NAME['pattern']}",
                    "description": "empty or absent: default",
                },
            },
            "required": ["mac"],
            "additionalProperties": False,
        },
        responses={201: ref("Machine")},
    ),
    Route(
        "GET",
        "/machines/{system_id}",
        get_machine,
        Permission.READ,
        "Show a machine",
        "machines",
        params=[_ID],
        responses=_MACHINE,
    ),
    Route(
        "GET",
        "/machines/{system_id}/inventory",
        get_inventory,
        Permission.READ,
        "The hardware inventory its agent reported (DMI, CPU, memory, disks, NICs)",
        "machines",
        params=[_ID],
        responses={200: {"type": "object"}},
    ),
    Route(
        "PATCH",
        "/machines/{system_id}",
        update_machine,
        Permission.OPERATE,
        "Change a machine's host name, pool, zone or tags",
        "machines",
        params=[_ID],
        body={
            "type": "object",
            "properties": _BODY_FIELDS,
            "additionalProperties": False,
        },
        responses=_MACHINE,
    ),
    Route(
        "DELETE",
        "/machines/{system_id}",
        delete_machine,
        Permission.OPERATE,
        "Delete a machine (one allocated to a user: only that user or an admin)",
        "machines",
        params=[_ID],
        responses={204: None},
    ),
    Route(
        "POST",
        "/machines/{system_id}/actions/{action}",
        machine_action,
        Permission.OPERATE,
        "Apply a lifecycle action; an action illegal in the machine's status is a 409",
        "machines",
        params=[
            _ID,
            Param(
                "action",
                {"type": "string", "enum": [a.value for a in AVAILABLE_ACTIONS]},
                "the action",
                where="path",
                required=True,
            ),
        ],
        body={
            "type": "object",
            "properties": {
                "comment": STR,
                "pool": STR,
                "zone": STR,
                "add": STR_LIST,
                "remove": STR_LIST,
                "tests": {**STR_LIST, "description": "commission, test: the tests to run"},
                "parameters": {
                    **RUN_OPTIONS["parameters"],
                    "description": "commission, test: " + RUN_OPTIONS["parameters"]["description"],
                },
                **DEPLOY_OPTIONS,
            },
            "additionalProperties": False,
        },
        responses=_MACHINE,
    ),
]
