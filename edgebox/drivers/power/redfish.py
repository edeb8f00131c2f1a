"""Redfish power driver: DMTF Redfish over HTTPS with basic authentication.

How it works: the service root (`/redfish/v1`) names the Systems collection; the driver uses the
`system_id` option, or the collection's only member, and caches that system's URI for its
lifetime (a fatal answer, such as a 404 after a firmware update, drops it so the next call
looks again). Every operation GETs the system
first: that read gives the power state, the `#ComputerSystem.Reset` action's target and its
`ResetType@Redfish.AllowableValues`, and the boot override's allowed targets, so an unsupported
reset type or boot target is a FatalPowerError before anything is sent.

- on / off / soft off: Reset `On` / `ForceOff` / `GracefulShutdown`, skipped when the system is
  already in that state (some BMCs, iDRAC among them, answer 409 to "On" when on); a hard off is
  still sent while the system is `PoweringOff`.
- cycle: `ForceRestart` (or `PowerCycle` where only that is offered); a system that is off gets
  `On` instead, because a restart of a powered-off system is refused or ignored by most BMCs.
- boot device: PATCH `Boot.BootSourceOverrideTarget` `Pxe`/`Hdd` with `BootSourceOverrideEnabled`
  `Once` or `Continuous`. `BootSourceOverrideMode` (UEFI/Legacy) is left as it is. A BMC that
  demands `If-Match` (HTTP 428) gets the PATCH again with the ETag of the read just made.
- query: `PowerState` `On` and `PoweringOn` (and `Paused`) are on, `Off` and `PoweringOff` are
  off: the power queue asks about the state an operation is heading to, and a transition in
  progress is already the answer it waits for. A missing state is UNKNOWN.

Calls return when the BMC has accepted the request (200, 202 or 204); they do not wait for the
power state to change (sushy-tools takes 1-11 s, real servers longer): the queue polls `query`.
A 202 with a task monitor is not followed, nor is a redirect. Errors map as `http_transport`
describes; the Redfish error's `@Message.ExtendedInfo` messages go to the debug log (an error's
message never quotes what the server sent). The address is checked against the power targets
policy when the BMC is set and at each connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from edgebox.domain.power import BootDevice, PowerState
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    DriverKind,
    FatalPowerError,
    OptionSpec,
    PowerDriver,
    Target,
    check_options,
)
from edgebox.drivers.power.http_transport import (
    HttpOptions,
    HttpReply,
    basic_auth,
    basic_credentials,
    excerpt,
    http_option_specs,
    open_session,
    parse_http_options,
    parse_http_url,
    send,
    status_error,
    url_target,
)
from edgebox.drivers.power.targets import TargetGuard

log = logging.getLogger(__name__)

SERVICE_ROOT = "/redfish/v1"

OPTIONS: dict[str, OptionSpec] = {
    **http_option_specs(timeout_default=30),
    "system_id": OptionSpec(
        str,
        "",
        "the ComputerSystem to control, by Id (e.g. System.Embedded.1) or URI; empty: the only"
        " member of /redfish/v1/Systems",
    ),
}

_POWER_STATES = {
    "On": PowerState.ON,
    "PoweringOn": PowerState.ON,
    "Paused": PowerState.ON,
    "Off": PowerState.OFF,
    "PoweringOff": PowerState.OFF,
}

_BOOT_TARGETS = {BootDevice.NETWORK: "Pxe", BootDevice.DISK: "Hdd"}
_CYCLE_TYPES = ("ForceRestart", "PowerCycle")


def parse_redfish_address(address: str) -> URL:
    """The BMC's base URL from `host`, `host:port`, `[v6]:port` or an http(s) URL.

    https is the default; `http://` is accepted for labs. A path is allowed only if it is the
    service root itself, which Redfish fixes at /redfish/v1.
    """
    text = address.strip()
    if not text:
        raise ValueError("the redfish driver needs an address (host, host:port or https://…)")
    if "://" not in text:
        if text.count(":") > 1 and not text.startswith("["):
            text = f"[{text}]"  # a bare IPv6 address
        text = f"https://{text}"
    url = parse_http_url(text, option="address")
    if url.path.rstrip("/") not in ("", SERVICE_ROOT) or url.query_string or url.fragment:
        raise ValueError(f"address: expected a base URL like https://host:port, got {address!r}")
    return url.with_path("/").with_query(None).with_fragment(None)


def power_state_of(system: Mapping[str, Any]) -> PowerState:
    """The ComputerSystem's `PowerState` in edgebox's words (see the module doc)."""
    return _POWER_STATES.get(str(system.get("PowerState")), PowerState.UNKNOWN)


@dataclass(frozen=True, slots=True)
class ResetAction:
    target: str
    allowed: frozenset[str] | None  # None: the BMC does not say


def reset_action_of(system: Mapping[str, Any]) -> ResetAction | None:
    """The system's `#ComputerSystem.Reset` action, or None when it has none."""
    actions = system.get("Actions")
    action = actions.get("#ComputerSystem.Reset") if isinstance(actions, dict) else None
    if not isinstance(action, dict) or not isinstance(action.get("target"), str):
        return None
    allowed = action.get("ResetType@Redfish.AllowableValues")
    if isinstance(allowed, list):
        return ResetAction(action["target"], frozenset(str(v) for v in allowed))
    return ResetAction(action["target"], None)


def boot_targets_of(system: Mapping[str, Any]) -> frozenset[str] | None:
    """`BootSourceOverrideTarget@Redfish.AllowableValues`, or None when the BMC does not say."""
    boot = system.get("Boot")
    allowed = (
        boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")
        if isinstance(boot, dict)
        else None
    )
    return frozenset(str(v) for v in allowed) if isinstance(allowed, list) else None


def boot_override(device: BootDevice, *, once: bool) -> dict[str, Any]:
    """The PATCH body that sets the boot override."""
    return {
        "Boot": {
            "BootSourceOverrideTarget": _BOOT_TARGETS[device],
            "BootSourceOverrideEnabled": "Once" if once else "Continuous",
        }
    }


def choose_system(members: Sequence[str], system_id: str) -> str:
    """The system URI to use among the collection's member URIs; ValueError says why none."""
    if system_id:
        for uri in members:
            if system_id in (uri.rstrip("/"), uri.rstrip("/").rsplit("/", 1)[-1]):
                return uri
        listed = ", ".join(members) or "none"
        raise ValueError(f"no system {system_id!r} in the Systems collection (members: {listed})")
    if len(members) == 1:
        return members[0]
    if not members:
        raise ValueError("the Systems collection is empty: this BMC controls no ComputerSystem")
    ids = ", ".join(uri.rstrip("/").rsplit("/", 1)[-1] for uri in members)
    raise ValueError(f"the BMC has {len(members)} systems ({ids}): set the system_id option")


def redfish_error_detail(body: bytes) -> str:
    """What a Redfish error body says: the ExtendedInfo messages, else `error.message`."""
    try:
        document = json.loads(body)
    except ValueError:
        return excerpt(body.decode("utf-8", "replace"))
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return excerpt(body.decode("utf-8", "replace"))
    infos = error.get("@Message.ExtendedInfo")
    messages = [
        str(info["Message"])
        for info in (infos if isinstance(infos, list) else [])
        if isinstance(info, dict) and info.get("Message")
    ]
    if messages:
        return excerpt("; ".join(messages), 400)
    return excerpt(str(error.get("message") or error.get("code") or ""), 400)


class RedfishDriver:
    """One Redfish BMC, one of its systems, one aiohttp session (opened on first use)."""

    def __init__(
        self, config: BmcConfig, base: URL, http: HttpOptions, system_id: str, guard: TargetGuard
    ) -> None:
        self._address = config.address
        self._guard = guard
        self._credentials = basic_credentials(config.username, config.password)
        self._headers = {
            "Accept": "application/json",
            "OData-Version": "4.0",
            **basic_auth(config.username, config.password),
        }
        self._base = base
        self._http = http
        self._system_id = system_id
        self._session: aiohttp.ClientSession | None = None
        self._system_uri: str | None = None

    async def power_on(self) -> None:
        _, system = await self._read_system()
        if power_state_of(system) is PowerState.ON:
            log.debug("redfish on: already on address=%s", self._address)
            return
        await self._reset(system, ("On",))

    async def power_off(self, *, soft: bool = False) -> None:
        _, system = await self._read_system()
        # A hard off goes through during PoweringOff: a graceful shutdown that hangs there is
        # the usual reason someone asks for one.
        done = (
            power_state_of(system) is PowerState.OFF if soft else system.get("PowerState") == "Off"
        )
        if done:
            log.debug("redfish off: already off address=%s", self._address)
            return
        await self._reset(system, ("GracefulShutdown",) if soft else ("ForceOff",))

    async def power_cycle(self) -> None:
        _, system = await self._read_system()
        if power_state_of(system) is PowerState.OFF:
            await self._reset(system, ("On",))
        else:
            await self._reset(system, _CYCLE_TYPES)

    async def query(self) -> PowerState:
        return power_state_of((await self._read_system())[1])

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None:
        uri, system = await self._read_system()
        allowed = boot_targets_of(system)
        target = _BOOT_TARGETS[device]
        if allowed is not None and target not in allowed:
            raise FatalPowerError(
                self._address,
                f"system {uri} cannot boot from {target} (it offers {', '.join(sorted(allowed))})",
            )
        body = boot_override(device, once=once)
        answer = await self._request("PATCH", uri, json=body)
        if answer.status == 428:
            # Precondition Required: this BMC wants the ETag of what we read.
            etag = str(system.get("@odata.etag") or "*")
            answer = await self._request("PATCH", uri, json=body, headers={"If-Match": etag})
        self._check(answer, "PATCH", uri)
        log.info("redfish boot override address=%s target=%s once=%s", self._address, target, once)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _reset(self, system: Mapping[str, Any], preference: Sequence[str]) -> None:
        uri = str(system.get("@odata.id") or self._system_uri)
        action = reset_action_of(system)
        if action is None:
            raise FatalPowerError(self._address, f"{uri} has no #ComputerSystem.Reset action")
        usable = [t for t in preference if action.allowed is None or t in action.allowed]
        if not usable:
            offered = ", ".join(sorted(action.allowed or ())) or "none"
            raise FatalPowerError(
                self._address,
                f"{uri} does not support ResetType {' or '.join(preference)} (it offers {offered})",
            )
        answer = await self._request("POST", action.target, json={"ResetType": usable[0]})
        self._check(answer, "POST", action.target)
        log.info("redfish reset address=%s system=%s type=%s", self._address, uri, usable[0])

    async def _read_system(self) -> tuple[str, dict[str, Any]]:
        """The system's URI and its current document (the ETag header as `@odata.etag`)."""
        uri = await self._find_system()
        try:
            reply, system = await self._get_json(uri)
        except FatalPowerError:
            # A 404 after a firmware update renumbered the systems, say: look again next time.
            self._system_uri = None
            raise
        if "ETag" in reply.headers:
            system["@odata.etag"] = reply.headers["ETag"]
        return uri, system

    async def _find_system(self) -> str:
        if self._system_uri is None:
            if self._system_id.startswith("/"):
                self._system_uri = self._system_id
            else:
                self._system_uri = await self._discover_system()
        return self._system_uri

    async def _discover_system(self) -> str:
        _, root = await self._get_json(SERVICE_ROOT)
        systems = root.get("Systems")
        if not isinstance(systems, dict) or not isinstance(systems.get("@odata.id"), str):
            raise FatalPowerError(self._address, f"{SERVICE_ROOT} names no Systems collection")
        _, collection = await self._get_json(systems["@odata.id"])
        members = collection.get("Members")
        uris = [
            m["@odata.id"]
            for m in (members if isinstance(members, list) else [])
            if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)
        ]
        try:
            return choose_system(uris, self._system_id)
        except ValueError as exc:
            raise FatalPowerError(self._address, str(exc)) from None

    async def _get_json(self, uri: str) -> tuple[HttpReply, dict[str, Any]]:
        reply = await self._request("GET", uri)
        self._check(reply, "GET", uri)
        try:
            document = json.loads(reply.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            log.debug(
                "redfish answer is not JSON address=%s uri=%s body=%r",
                self._address,
                uri,
                excerpt(reply.text(), 100),
            )
            raise FatalPowerError(
                self._address,
                f"GET {uri}: the answer is not a Redfish JSON object (is this a Redfish BMC?"
                " the start of the answer is in the debug log)",
            )
        return reply, document

    async def _request(
        self,
        method: str,
        uri: str,
        *,
        json: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        url = self._base.join(URL(uri))
        if url.origin() != self._base.origin():
            # A URI from the BMC's own documents (an action target) naming another host: the
            # credentials go with every request, so they must stay with this BMC.
            raise FatalPowerError(
                self._address,
                f"{method}: the BMC points to {url.origin()}, another host than its own; edgebox"
                " sends the BMC's credentials only to the BMC's address (if that is the BMC under"
                " another name, set the address to it)",
            )
        if self._session is None:
            self._session = await open_session(
                self._address, self._http, guard=self._guard, headers=self._headers
            )
        return await send(
            self._session,
            method,
            url,
            address=self._address,
            guard=self._guard,
            timeout_s=self._http.timeout,
            json=json,
            headers=headers,
        )

    def _check(self, reply: HttpReply, method: str, uri: str) -> None:
        if not reply.ok:
            detail = redfish_error_detail(reply.body) if reply.body else ""
            raise status_error(
                self._address,
                f"{method} {URL(uri).path}",
                reply,
                credentials=self._credentials,
                detail=detail,
            )


def create(config: BmcConfig, env: DriverEnv) -> PowerDriver:
    """A driver for `config`; a configuration mistake is a FatalPowerError naming the address."""
    try:
        options = check_options(KIND, config.options)
        base = parse_redfish_address(config.address)
        http = parse_http_options(options)
    except ValueError as exc:
        raise FatalPowerError(config.address, str(exc)) from None
    return RedfishDriver(config, base, http, str(options["system_id"]), env.targets)


def targets(config: BmcConfig) -> list[Target]:
    return [url_target(parse_redfish_address(config.address), "address")]


KIND = DriverKind(
    name="redfish",
    description="DMTF Redfish BMC (iDRAC, iLO, XCC, OpenBMC, ...) over HTTPS",
    options=OPTIONS,
    needs_address=True,
    create=create,
    targets=targets,
)
