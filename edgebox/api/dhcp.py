"""The /dhcp endpoints: status per interface, subnets (CRUD), leases, other servers seen."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import iso
from edgebox.api.request_input import bad, json_object, query_enums, query_int, query_mac
from edgebox.api.routing import Param, Route
from edgebox.api.schemas import MAC, STR, enum_of, ref, repeated, schema_of_settings, whole
from edgebox.domain.auth import Permission
from edgebox.domain.dhcp import LeaseRecord, LeaseState
from edgebox.domain.settings import SubnetSettings
from edgebox.services.dhcp_service import DhcpService, LinkStatus
from edgebox.services.dhcp_subnets import ServedSubnet, subnet_to_json

SUBNET_FIELDS = {
    "cidr", "interface", "ranges", "router", "dns", "ntp", "domain", "domain_search", "mtu",
    "lease_time", "routes", "boot",
}  # fmt: skip


MAX_LEASES = 100_000
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = {"type": "string", "pattern": rf"^{_OCTET}(\.{_OCTET}){{3}}$"}


def _dhcp(request: web.Request) -> DhcpService:
    service = context(request).dhcp
    if service is None:
        raise ApiError(404, "not_found", "DHCP is not configured on this edgebox")
    return service


def _subnet_json(subnet: ServedSubnet) -> dict[str, object]:
    return {**subnet_to_json(subnet.settings), "source": subnet.source}


def _link_json(link: LinkStatus) -> dict[str, object]:
    return {
        "interface": link.name,
        "netns": link.netns,
        "mode": link.mode,
        "state": link.state,
        "address": link.address,
        "error": link.error,
        "received": link.received,
        "sent": link.sent,
        "dropped": link.dropped,
    }


def _lease_json(lease: LeaseRecord, now: float) -> dict[str, object]:
    state = lease.state
    if state is LeaseState.BOUND and lease.expires <= now:
        state = LeaseState.EXPIRED
    return {
        "ip": str(ipaddress.IPv4Address(lease.ip)),
        "mac": lease.mac,
        "client_id": lease.client_id.hex() if lease.client_id else None,
        "subnet": lease.subnet,
        "state": state.value,
        "hostname": lease.hostname,
        "expires": iso(lease.expires),
    }


async def status(request: web.Request) -> web.Response:
    service = _dhcp(request)
    servers = await service.foreign_servers()
    return web.json_response(
        {
            "interfaces": [_link_json(link) for link in service.status()],
            "leases_bound": service.bound_count(),
            "foreign_servers": [
                {
                    "server_ip": s.server_ip,
                    "interface": s.interface,
                    "server_mac": s.server_mac,
                    "offered_ip": s.offered_ip,
                    "first_seen": iso(s.first_seen),
                    "last_seen": iso(s.last_seen),
                }
                for s in servers
            ],
            "warnings": [
                f"another DHCP server {s.server_ip} answers on {s.interface}" for s in servers
            ],
        }
    )


async def list_subnets(request: web.Request) -> web.Response:
    subnets = _dhcp(request).subnets.all()
    return web.json_response({"items": [_subnet_json(s) for s in subnets]})


async def get_subnet(request: web.Request) -> web.Response:
    subnet = _dhcp(request).subnets.get(request.match_info["cidr"])
    return web.json_response(_subnet_json(subnet))


async def create_subnet(request: web.Request) -> web.Response:
    body = await json_object(request, SUBNET_FIELDS)
    subnet = await _dhcp(request).subnets.create(body)
    return web.json_response(_subnet_json(subnet), status=201)


async def replace_subnet(request: web.Request) -> web.Response:
    body = await json_object(request, SUBNET_FIELDS)
    subnet = await _dhcp(request).subnets.replace(request.match_info["cidr"], body)
    return web.json_response(_subnet_json(subnet))


async def delete_subnet(request: web.Request) -> web.Response:
    await _dhcp(request).subnets.delete(request.match_info["cidr"])
    return web.Response(status=204)


async def list_leases(request: web.Request) -> web.Response:
    service = _dhcp(request)
    states = query_enums(request, "state", LeaseState)
    mac = query_mac(request)
    limit = query_int(request, "limit", 1000, 1, MAX_LEASES)
    leases = await service.leases(request.query.get("subnet"), mac, states, limit)
    now = service.now()
    return web.json_response({"items": [_lease_json(lease, now) for lease in leases]})


async def release_lease(request: web.Request) -> web.Response:
    text = request.match_info["ip"]
    try:
        ip = int(ipaddress.IPv4Address(text))
    except ValueError:
        raise bad("ip", f"expected an IPv4 address, got {text[:64]!r}") from None
    lease = await _dhcp(request).release(ip)
    return web.json_response(_lease_json(lease, _dhcp(request).now()))


_CIDR = Param("cidr", STR, "the subnet, e.g. 10.0.0.0/24", where="path", required=True)
_SUBNET = {"type": "object"}
_SUBNET_BODY = schema_of_settings(SubnetSettings)
_LIST = {"type": "object", "properties": {"items": {"type": "array", "items": _SUBNET}}}

ROUTES = [
    Route(
        "GET",
        "/dhcp/status",
        status,
        Permission.READ,
        "DHCP per interface, bound leases, and other DHCP servers seen on served links",
        "dhcp",
        responses={200: {"type": "object"}},
    ),
    Route(
        "GET",
        "/dhcp/subnets",
        list_subnets,
        Permission.READ,
        "Subnets served (from the configuration file and the API)",
        "dhcp",
        responses={200: _LIST},
    ),
    Route(
        "POST",
        "/dhcp/subnets",
        create_subnet,
        Permission.ADMIN,
        "Add a subnet; overlapping subnets or ranges are refused with 409",
        "dhcp",
        body=_SUBNET_BODY,
        responses={201: _SUBNET},
    ),
    Route(
        "GET",
        "/dhcp/subnets/{cidr:[0-9./]+}",
        get_subnet,
        Permission.READ,
        "Show a subnet",
        "dhcp",
        params=[_CIDR],
        responses={200: _SUBNET},
    ),
    Route(
        "PUT",
        "/dhcp/subnets/{cidr:[0-9./]+}",
        replace_subnet,
        Permission.ADMIN,
        "Replace a subnet made through the API",
        "dhcp",
        params=[_CIDR],
        body={k: v for k, v in _SUBNET_BODY.items() if k != "required"},  # cidr: the path
        responses={200: _SUBNET},
    ),
    Route(
        "DELETE",
        "/dhcp/subnets/{cidr:[0-9./]+}",
        delete_subnet,
        Permission.ADMIN,
        "Delete a subnet made through the API",
        "dhcp",
        params=[_CIDR],
        responses={204: None},
    ),
    Route(
        "GET",
        "/dhcp/leases",
        list_leases,
        Permission.READ,
        "Leases, by subnet, MAC or state",
        "dhcp",
        params=[
            Param("subnet", STR, "a subnet's CIDR"),
            Param("mac", MAC, "a client MAC"),
            Param("state", repeated(enum_of(s.value for s in LeaseState)), "repeatable"),
            Param("limit", whole(1, MAX_LEASES), "at most this many (default 1000)"),
        ],
        responses={200: _LIST},
    ),
    Route(
        "POST",
        "/dhcp/leases/{ip}/release",
        release_lease,
        Permission.OPERATE,
        "Free a lease (the client is not told; it renews or rebinds into a NAK)",
        "dhcp",
        params=[Param("ip", IPV4, "the leased address", where="path", required=True)],
        responses={200: ref("Lease")},
    ),
]
