"""A small Redfish BMC for tests: the service root, a Systems collection and ComputerSystems
shaped like the DMTF mockups, with basic auth, the Reset action and the Boot override PATCH.

It is deterministic (a reset takes effect at once) and has knobs real BMCs turn on us: answer
the next requests with a given status (503 while the BMC's web server restarts), answer slowly,
demand `If-Match` on PATCH (428), refuse a reset to the state the system is already in (409, as
iDRAC does), and restrict the allowed reset types and boot targets (advertised in
`@Redfish.AllowableValues`, or not). Every request is recorded.

    bmc = RedfishBmc(systems=("1",))
    async with serve_redfish(bmc) as base_url:
        ...  # base_url is "http://127.0.0.1:PORT"
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ALL_RESET_TYPES = (
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
    "PushPowerButton",
)
ALL_BOOT_TARGETS = ("None", "Pxe", "Hdd", "Cd", "BiosSetup", "UefiHttp")

# What a reset type leaves the system in; a restart of a system that is off is refused below.
_RESULT = {
    "On": "On",
    "ForceOn": "On",
    "ForceOff": "Off",
    "GracefulShutdown": "Off",
    "ForceRestart": "On",
    "GracefulRestart": "On",
    "PowerCycle": "On",
}


@dataclass
class FakeSystem:
    id: str
    power_state: str = "Off"
    boot_target: str = "None"
    boot_enabled: str = "Disabled"
    resets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


class RedfishBmc:
    """The state and behaviour of the fake BMC; `app()` serves it."""

    def __init__(
        self,
        systems: Iterable[str] = ("1",),
        *,
        username: str = "admin",
        password: str = "secret",
        reset_types: Iterable[str] | None = ALL_RESET_TYPES,
        boot_targets: Iterable[str] | None = ALL_BOOT_TARGETS,
        advertise_allowed: bool = True,
        refuse_same_state: bool = True,
        require_if_match: bool = False,
    ) -> None:
        self.systems = {sid: FakeSystem(sid) for sid in systems}
        self.username = username
        self.password = password
        self.reset_types = tuple(reset_types) if reset_types is not None else None
        self.boot_targets = tuple(boot_targets) if boot_targets is not None else None
        self.advertise_allowed = advertise_allowed
        self.refuse_same_state = refuse_same_state
        self.require_if_match = require_if_match
        self.delay = 0.0  # seconds before each answer
        self.fail_next: list[int] = []  # statuses for the next requests, in order
        self.requests: list[Recorded] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/redfish/v1", self._root)
        app.router.add_get("/redfish/v1/", self._root)
        app.router.add_get("/redfish/v1/Systems", self._collection)
        app.router.add_get("/redfish/v1/Systems/{id}", self._get_system)
        app.router.add_patch("/redfish/v1/Systems/{id}", self._patch_system)
        app.router.add_post("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset", self._reset)
        return app

    def resets(self, system_id: str = "1") -> list[str]:
        return self.systems[system_id].resets

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                return error_response(400, "Base.1.8.MalformedJSON", "The body is not JSON.")
        self.requests.append(Recorded(request.method, request.path, body, dict(request.headers)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            status = self.fail_next.pop(0)
            return error_response(status, "Base.1.0.ServiceTemporarilyUnavailable", "Try later.")
        if request.path.rstrip("/") != "/redfish/v1" and not self._authorized(request):
            response = error_response(401, "Base.1.8.NoValidSession", "Authentication failed.")
            response.headers["WWW-Authenticate"] = 'Basic realm="Redfish"'
            return response
        result: web.StreamResponse = await handler(request)
        return result

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) == (self.username, self.password)

    async def _root(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
                "@odata.id": "/redfish/v1/",
                "Id": "RootService",
                "RedfishVersion": "1.6.0",
                "Systems": {"@odata.id": "/redfish/v1/Systems"},
            }
        )

    async def _collection(self, request: web.Request) -> web.Response:
        members = [{"@odata.id": f"/redfish/v1/Systems/{sid}"} for sid in self.systems]
        return web.json_response(
            {
                "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                "@odata.id": "/redfish/v1/Systems",
                "Members@odata.count": len(members),
                "Members": members,
            }
        )

    def _system(self, request: web.Request) -> FakeSystem:
        system = self.systems.get(request.match_info["id"])
        if system is None:
            raise web.HTTPNotFound(
                text=json.dumps(_error_body("Base.1.8.ResourceMissingAtURI", "No such system.")),
                content_type="application/json",
            )
        return system

    def _etag(self, system: FakeSystem) -> str:
        state = f"{system.power_state}/{system.boot_target}/{system.boot_enabled}"
        return '"' + hashlib.sha256(state.encode()).hexdigest()[:16] + '"'

    async def _get_system(self, request: web.Request) -> web.Response:
        system = self._system(request)
        uri = f"/redfish/v1/Systems/{system.id}"
        reset: dict[str, Any] = {"target": f"{uri}/Actions/ComputerSystem.Reset"}
        if self.reset_types is not None and self.advertise_allowed:
            reset["ResetType@Redfish.AllowableValues"] = list(self.reset_types)
        boot: dict[str, Any] = {
            "BootSourceOverrideEnabled": system.boot_enabled,
            "BootSourceOverrideTarget": system.boot_target,
            "BootSourceOverrideMode": "UEFI",
        }
        if self.boot_targets is not None and self.advertise_allowed:
            boot["BootSourceOverrideTarget@Redfish.AllowableValues"] = list(self.boot_targets)
        document = {
            "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
            "@odata.id": uri,
            "@odata.etag": self._etag(system),
            "Id": system.id,
            "Name": f"System {system.id}",
            "SystemType": "Physical",
            "PowerState": system.power_state,
            "Boot": boot,
            "Actions": {"#ComputerSystem.Reset": reset},
        }
        return web.json_response(document, headers={"ETag": self._etag(system)})

    async def _patch_system(self, request: web.Request) -> web.Response:
        system = self._system(request)
        if self.require_if_match:
            given = request.headers.get("If-Match")
            if given is None:
                return error_response(428, "Base.1.8.PreconditionRequired", "If-Match needed.")
            if given not in ("*", self._etag(system)):
                return error_response(412, "Base.1.8.PreconditionFailed", "ETag mismatch.")
        boot = (await request.json()).get("Boot", {})
        target = boot.get("BootSourceOverrideTarget", system.boot_target)
        enabled = boot.get("BootSourceOverrideEnabled", system.boot_enabled)
        allowed = self.boot_targets or ALL_BOOT_TARGETS
        if target not in allowed:
            return error_response(
                400,
                "Base.1.8.PropertyValueNotInList",
                f"The value {target} for the property BootSourceOverrideTarget is not in the list"
                " of acceptable values.",
            )
        if enabled not in ("Once", "Continuous", "Disabled"):
            return error_response(
                400,
                "Base.1.8.PropertyValueNotInList",
                f"The value {enabled} for the property BootSourceOverrideEnabled is not in the"
                " list of acceptable values.",
            )
        system.boot_target, system.boot_enabled = target, enabled
        return web.Response(status=204)

    async def _reset(self, request: web.Request) -> web.Response:
        system = self._system(request)
        reset_type = (await request.json()).get("ResetType")
        allowed = self.reset_types or ALL_RESET_TYPES
        if reset_type not in allowed or reset_type not in _RESULT:
            return error_response(
                400,
                "Base.1.8.ActionParameterNotSupported",
                f"The parameter ResetType for the action ComputerSystem.Reset does not support"
                f" the value {reset_type}.",
            )
        result = _RESULT[reset_type]
        restart = "Restart" in reset_type or reset_type == "PowerCycle"
        refuse = system.power_state == ("Off" if restart else result)
        if self.refuse_same_state and refuse:
            return error_response(
                409, "IDRAC.2.8.PSU501", f"Unable to perform {reset_type}: the server is {result}."
            )
        system.power_state = result
        system.resets.append(reset_type)
        return web.Response(status=204)


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": code,
                    "Message": message,
                    "Severity": "Warning",
                }
            ],
        }
    }


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response(_error_body(code, message), status=status)


@contextlib.asynccontextmanager
async def serve_app(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 at a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"{'https' if ssl_context else 'http'}://{host}:{port}"
    finally:
        await runner.cleanup()


def serve_redfish(
    bmc: RedfishBmc, ssl_context: ssl.SSLContext | None = None
) -> contextlib.AbstractAsyncContextManager[str]:
    return serve_app(bmc.app(), ssl_context)
