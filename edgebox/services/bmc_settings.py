"""A machine's BMC settings: set, shown, removed, and made into a driver's configuration.

What is checked when a BMC is set: the driver and its options (by making a driver and dropping
it), and where it would connect (`power.allow_targets`, see `domain.power_targets`; a name that
does not resolve yet is let through, it is checked at every call). What is stored: the secrets
sealed and kept or dropped as `bmc_secrets` says, the other options as they are. What is shown:
never a secret (`BmcView`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgebox.domain.errors import InvalidInput, NotFound
from edgebox.domain.models import Machine, NewEvent
from edgebox.drivers.power.base import (
    BmcConfig,
    DriverEnv,
    DriverKind,
    PowerError,
    check_options,
)
from edgebox.drivers.power.targets import TargetRefused
from edgebox.services.bmc_secrets import BmcRequest, BmcSecrets, MergedBmc, shown_secrets
from edgebox.services.secret_box import SecretBox, SecretError
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import BmcRecord, BmcRow, PowerStore

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 5.0  # seconds to resolve a BMC's host name when it is set

DriverFactory = Callable[[str], DriverKind]


@dataclass(frozen=True, slots=True)
class BmcView:
    """A machine's BMC as the API shows it: never a secret, only whether it is set."""

    driver: str
    address: str
    username: str
    has_password: bool
    options: Mapping[str, Any]  # the options that are not secret
    secrets: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # has_k_g, ...
    dropped: tuple[str, ...] = ()  # set_bmc: stored secrets dropped (the BMC points elsewhere)


class BmcSettings:
    """The BMC settings of the site's machines (the power service drives the BMCs)."""

    def __init__(
        self,
        *,
        store: PowerStore,
        machines: MachineStore,
        secrets: SecretBox,
        kinds: DriverFactory,
        env: DriverEnv,
    ) -> None:
        self._store = store
        self._machines = machines
        self._secrets = BmcSecrets(secrets)
        self._kinds = kinds
        self._env = env

    async def view(self, system_id: str) -> BmcView | None:
        await self._machines.get(system_id)  # NotFound for an unknown machine
        record = await self._store.bmc(system_id)
        return self._view(record) if record else None

    def config(self, record: BmcRecord) -> tuple[DriverKind, BmcConfig]:
        """The driver kind and the configuration (secrets opened) of a stored BMC; ValueError
        or SecretError when it cannot be used as it is."""
        kind = self._kinds(record.driver)
        opened = self._secrets.open(record, kind)
        options = check_options(kind, {**record.options, **opened.secret_options})
        config = BmcConfig(
            record.driver, record.address, record.username, opened.password or "", options
        )
        return kind, config

    async def set(
        self,
        system_id: str,
        actor: str,
        *,
        driver: str,
        address: str = "",
        username: str = "",
        password: str | None = None,
        options: Mapping[str, object] | None = None,
    ) -> BmcView:
        """Set (replace) the machine's BMC. A secret not given (a None password, a secret
        option left out) keeps the stored one, unless the BMC now points elsewhere: see
        `bmc_secrets`."""
        machine = await self._machines.get(system_id)
        kind, request = self._bmc_request(driver, address, username, password, options or {})
        # Checked with what the stored secrets would make of it; decided again below, in the
        # transaction, with the row as it is then.
        merged = self._secrets.merge(kind, request, await self._store.bmc_by_id(machine.id))
        config = BmcConfig(
            driver, request.address, username, merged.password or "", merged.all_options
        )
        await _check_config(kind, config, self._env)
        await self._check_targets(kind, config)
        dropped: tuple[str, ...] = ()

        def decide(stored: BmcRecord | None) -> BmcRow:
            nonlocal dropped
            final = self._secrets.merge(kind, request, stored)
            sealed = self._secrets.seal(machine.id, final)
            dropped = final.dropped
            return BmcRow(
                driver,
                request.address,
                username,
                sealed.secret,
                final.options,
                sealed.secret_options,
                _bmc_set_event(machine, actor, request, final),
            )

        await self._store.set_bmc(machine.id, decide)
        if dropped:
            log.info(
                "bmc secrets dropped system_id=%s dropped=%s user=%s: the BMC points elsewhere",
                machine.system_id,
                ",".join(dropped),
                actor,
            )
        view = await self.view(system_id)
        assert view is not None
        return dataclasses.replace(view, dropped=dropped)

    def _bmc_request(
        self,
        driver: str,
        address: str,
        username: str,
        password: str | None,
        options: Mapping[str, object],
    ) -> tuple[DriverKind, BmcRequest]:
        try:
            kind = self._kinds(driver)
        except ValueError as exc:
            raise InvalidInput("driver", str(exc)) from None
        try:
            checked = check_options(kind, options)
        except ValueError as exc:
            raise InvalidInput("options", str(exc)) from None
        if kind.needs_address and not address.strip():
            raise InvalidInput("address", f"the {driver} driver needs the BMC's address")
        request = BmcRequest(
            driver, address.strip(), username, password, checked, frozenset(options)
        )
        return kind, request

    async def _check_targets(self, kind: DriverKind, config: BmcConfig) -> None:
        """Refuse a BMC whose address or URLs are refused targets now, rather than at its
        first call. A name that does not resolve now is let through: it is checked again at
        every call, and a BMC may be set before its DNS name exists."""
        for target in kind.targets(config):
            field = "address" if target.source == "address" else "options"
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    await self._env.targets.addresses(target.host, target.port)
            except TargetRefused as exc:
                raise InvalidInput(field, f"{target.source}: {exc}") from None
            except (OSError, TimeoutError) as exc:
                log.info(
                    "bmc target not resolved now, checked at each call host=%s: %s",
                    target.host,
                    exc,
                )

    async def delete(self, system_id: str, actor: str) -> Machine:
        machine = await self._machines.get(system_id)
        event = NewEvent(
            "power.bmc_deleted",
            f"BMC of {machine.hostname} removed",
            machine=machine.system_id,
            data={"user": actor},
        )
        if not await self._store.delete_bmc(machine.id, event):
            raise NotFound("BMC of machine", system_id)
        return machine

    async def seal_plain_secret_options(self) -> int:
        """Seal the secret options (k_g, headers) that an older edgebox stored among the plain
        options, and remove them from there. Returns how many BMCs were changed."""
        moved = 0
        for record in await self._store.bmcs():
            try:
                kind = self._kinds(record.driver)
            except ValueError:
                continue
            if not any(name in record.options for name in kind.secret_options):
                continue
            try:
                opened = self._secrets.open(record, kind)
            except SecretError as exc:
                log.warning("bmc secrets of %s do not open: %s", record.system_id, exc)
                continue
            merged = MergedBmc(opened.password, opened.secret_options, {}, ())
            sealed = self._secrets.seal(record.machine_id, merged)
            plain = {k: v for k, v in record.options.items() if k not in kind.secret_options}
            if await self._store.move_secret_options(record, plain, sealed.secret_options):
                moved += 1
        if moved:
            log.info("sealed the secret options of %d BMC(s) stored in plain text", moved)
        return moved

    def _view(self, record: BmcRecord) -> BmcView:
        try:
            kind: DriverKind | None = self._kinds(record.driver)
        except ValueError:
            kind = None
        secret_names = kind.secret_options if kind is not None else ()
        shown: dict[str, Any] = {}
        if kind is not None:
            try:
                shown = shown_secrets(kind, self._secrets.open(record, kind))
            except SecretError:
                shown = {f"has_{name}": True for name in secret_names}
        return BmcView(
            record.driver,
            record.address,
            record.username,
            record.secret is not None,
            {k: v for k, v in record.options.items() if k not in secret_names},
            shown,
        )


async def _check_config(kind: DriverKind, config: BmcConfig, env: DriverEnv) -> None:
    """Make (and drop) a driver: what only the driver can check (a webhook's URLs, a regular
    expression, a Redfish address) is refused now, not at the first power operation."""
    try:
        driver = kind.create(config, env)
    except (ValueError, PowerError) as exc:
        message = exc.message if isinstance(exc, PowerError) else str(exc)
        field = "address" if message.startswith("address") else "options"
        raise InvalidInput(field, message) from None
    await driver.close()


def _bmc_set_event(
    machine: Machine, actor: str, request: BmcRequest, merged: MergedBmc
) -> NewEvent:
    """The event of a BMC set: names of secrets at most, never a value."""
    message = f"BMC of {machine.hostname} set: driver {request.driver}" + (
        f" at {request.address}" if request.address else ""
    )
    if merged.dropped:
        message += (
            f"; the stored {', '.join(merged.dropped)} dropped, as the driver, address or a"
            " target option changed: set them again with the new settings"
        )
    return NewEvent(
        "power.bmc_set",
        message,
        machine=machine.system_id,
        data={
            "user": actor,
            "driver": request.driver,
            "address": request.address,
            "username": request.username,
            "secrets_dropped": list(merged.dropped),
        },
    )
