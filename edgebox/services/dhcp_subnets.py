"""The DHCP subnets edgebox serves: those of the configuration file plus those made through
the API, checked together (no overlaps, ranges inside their subnet, known interfaces).

Subnets from the file are read-only through the API: the file is the source of truth for
what it declares, and a change there takes effect at the next start.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgebox.domain.dhcp_settings_check import check_dhcp_settings
from edgebox.domain.errors import Conflict, InvalidInput, NotFound
from edgebox.domain.settings import ConfigError, DhcpSettings, SubnetSettings, parse_section
from edgebox.storage.dhcp_store import DhcpStore

BODY = "body"


@dataclass(frozen=True, slots=True)
class ServedSubnet:
    settings: SubnetSettings
    source: str  # "config" or "api"


def subnet_to_json(subnet: SubnetSettings) -> dict[str, Any]:
    return dataclasses.asdict(subnet)


class SubnetRegistry:
    def __init__(self, dhcp: DhcpSettings, store: DhcpStore) -> None:
        self._dhcp = dhcp
        self._store = store
        self._api: dict[str, SubnetSettings] = {}
        self._listeners: list[Callable[[], None]] = []
        self._validator: Callable[[], None] | None = None

    async def load(self) -> None:
        for stored in await self._store.subnets():
            data = json.loads(stored.definition)
            self._api[stored.cidr] = parse_section(SubnetSettings, data, "database", stored.cidr)

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def set_validator(self, validator: Callable[[], None]) -> None:
        """A check run on the would-be set of subnets (it raises ValueError to refuse)."""
        self._validator = validator

    def all(self) -> list[ServedSubnet]:
        served = [ServedSubnet(s, "config") for s in self._dhcp.subnets]
        return served + [ServedSubnet(s, "api") for s in self._api.values()]

    def get(self, cidr: str) -> ServedSubnet:
        for subnet in self.all():
            if subnet.settings.cidr == cidr:
                return subnet
        raise NotFound("subnet", cidr)

    async def create(self, body: Mapping[str, Any]) -> ServedSubnet:
        subnet = self._parse(body)
        if any(s.settings.cidr == subnet.cidr for s in self.all()):
            raise Conflict(f"subnet {subnet.cidr} already exists")
        self._check([*[s.settings for s in self.all()], subnet])
        self._api[subnet.cidr] = subnet
        try:
            self._validate()
            await self._store.put_subnet(subnet.cidr, json.dumps(subnet_to_json(subnet)), True)
        except BaseException:
            del self._api[subnet.cidr]
            raise
        self._changed()
        return ServedSubnet(subnet, "api")

    async def replace(self, cidr: str, body: Mapping[str, Any]) -> ServedSubnet:
        self._writable(cidr)
        subnet = self._parse({**body, "cidr": body.get("cidr", cidr)})
        if subnet.cidr != cidr:
            raise InvalidInput("cidr", "a subnet's CIDR cannot change; delete it and create one")
        others = [s.settings for s in self.all() if s.settings.cidr != cidr]
        self._check([*others, subnet])
        previous = self._api[cidr]
        self._api[cidr] = subnet
        try:
            self._validate()
            await self._store.put_subnet(cidr, json.dumps(subnet_to_json(subnet)), False)
        except BaseException:
            self._api[cidr] = previous
            raise
        self._changed()
        return ServedSubnet(subnet, "api")

    async def delete(self, cidr: str) -> None:
        self._writable(cidr)
        await self._store.delete_subnet(cidr)
        del self._api[cidr]
        self._changed()

    def _writable(self, cidr: str) -> None:
        if self.get(cidr).source == "config":
            raise Conflict(f"subnet {cidr} is declared in the configuration file; change it there")

    def _parse(self, body: Mapping[str, Any]) -> SubnetSettings:
        try:
            return parse_section(SubnetSettings, dict(body), BODY, "")
        except ConfigError as exc:
            raise _as_input_error(exc) from None

    def _check(self, subnets: Sequence[SubnetSettings]) -> None:
        try:
            check_dhcp_settings(dataclasses.replace(self._dhcp, subnets=tuple(subnets)), BODY)
        except ConfigError as exc:
            error = _as_input_error(exc)
            if "overlaps" in error.detail:
                raise Conflict(str(exc).removeprefix(f"{BODY}: ")) from None
            raise error from None

    def _validate(self) -> None:
        if self._validator is None:
            return
        try:
            self._validator()
        except ValueError as exc:
            raise Conflict(f"the subnets would not be served: {exc}") from None

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()


def _as_input_error(exc: ConfigError) -> InvalidInput:
    # Messages read "body: <key path>: <what is wrong>"; the key path names the field.
    text = str(exc).removeprefix(f"{BODY}: ")
    field, _, detail = text.partition(": ")
    field = field.removeprefix("dhcp.subnets[")
    if "]." in field:
        field = field.split("].", 1)[1]
    return InvalidInput(field, detail or text)
