"""A BMC's secrets: what is sealed, what is shown, and when a stored secret is dropped.

The secrets are the password and the driver's secret options (IPMI's `k_g`, a webhook's
`headers`: `OptionSpec.secret`). Each is sealed with the site's key (`SecretBox`), bound to the
machine, and never leaves edgebox except to the BMC: the API shows that it is set (and, for
headers, their names), events and logs name it at most.

A secret not given when a BMC is set again is kept: an operator who changes the user name
need not type the password again. But it is kept only while it goes where it went before: a
change of the driver, the address or a target option (a webhook URL, a port, TLS
verification: `OptionSpec.target`) drops every stored secret that is not given anew in the
same request. Otherwise anyone who may set a BMC could point it at a listener of their own and
receive the password an admin stored. A secret given as "" is removed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgebox.drivers.power.base import DriverKind, OptionValue
from edgebox.services.secret_box import SecretBox, SecretError
from edgebox.storage.power_store import BmcRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BmcRequest:
    """A BMC as a caller sets it. `password` None: not given (keep the stored one, if it may
    be kept); an option left out of `options` likewise for a secret option."""

    driver: str
    address: str
    username: str
    password: str | None
    options: Mapping[str, OptionValue]  # checked, defaults filled in
    named: frozenset[str]  # the options the caller gave (the others are defaults)


@dataclass(frozen=True, slots=True)
class MergedBmc:
    """The secrets a request leaves the BMC with, in clear text (only in memory), the other
    options, and which stored secrets were dropped because the BMC now points elsewhere."""

    password: str | None
    secret_options: dict[str, str]
    options: dict[str, Any]
    dropped: tuple[str, ...]

    @property
    def all_options(self) -> dict[str, Any]:
        return {**self.options, **self.secret_options}


@dataclass(frozen=True, slots=True)
class SealedBmc:
    secret: bytes | None
    secret_options: bytes | None


@dataclass(frozen=True, slots=True)
class OpenBmc:
    """The stored secrets in clear text (only in memory)."""

    password: str | None
    secret_options: dict[str, str]


class BmcSecrets:
    """Seals and opens one site's BMC secrets (see the module doc)."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def open(self, record: BmcRecord, kind: DriverKind | None = None) -> OpenBmc:
        """The stored secrets of `record` (SecretError when they do not open). Secret options
        that an older edgebox kept among the plain options are included (given `kind`)."""
        password = (
            self._box.unseal(record.secret, password_binding(record.machine_id))
            if record.secret is not None
            else None
        )
        options: dict[str, str] = {}
        if kind is not None:
            for name in kind.secret_options:
                legacy = record.options.get(name)
                if isinstance(legacy, str) and legacy:
                    options[name] = legacy
        if record.secret_options is not None:
            text = self._box.unseal(record.secret_options, options_binding(record.machine_id))
            options.update(json.loads(text))
        return OpenBmc(password, options)

    def merge(self, kind: DriverKind, request: BmcRequest, stored: BmcRecord | None) -> MergedBmc:
        """The secrets and options `request` leaves the BMC with, given what is `stored`."""
        plain = {k: v for k, v in request.options.items() if k not in kind.secret_options}
        given = {
            k: str(v)
            for k, v in request.options.items()
            if k in kind.secret_options and k in request.named
        }
        moved = stored is not None and target_changed(kind, request, plain, stored)
        kept = self._kept(kind, request, stored)
        dropped: list[str] = []
        password = request.password
        if password is None and kept.password is not None:
            if moved:
                dropped.append("password")
            else:
                password = kept.password
        secrets: dict[str, str] = {}
        for name in kind.secret_options:
            if name in given:
                value = given[name]
            elif name in kept.secret_options and not moved:
                value = kept.secret_options[name]
            else:
                if name in kept.secret_options:
                    dropped.append(name)
                continue
            if value:
                secrets[name] = value
        dropped += sorted(name for name in kept.secret_options if name not in kind.secret_options)
        return MergedBmc(password or None, secrets, plain, tuple(dropped))

    def seal(self, machine_id: int, merged: MergedBmc) -> SealedBmc:
        secrets = merged.secret_options
        return SealedBmc(
            secret=(
                self._box.seal(merged.password, password_binding(machine_id))
                if merged.password
                else None
            ),
            secret_options=(
                self._box.seal(json.dumps(secrets, sort_keys=True), options_binding(machine_id))
                if secrets
                else None
            ),
        )

    def _kept(self, kind: DriverKind, request: BmcRequest, stored: BmcRecord | None) -> OpenBmc:
        """What is stored and might be kept. Stored secrets that do not open (the key file was
        replaced) count as none."""
        if stored is None:
            return OpenBmc(None, {})
        try:
            return self.open(stored, kind if stored.driver == request.driver else None)
        except SecretError:
            log.warning(
                "the stored BMC secrets of machine %s do not open; they are replaced",
                stored.system_id,
            )
            return OpenBmc(None, {})


def target_changed(
    kind: DriverKind, request: BmcRequest, plain: Mapping[str, object], stored: BmcRecord
) -> bool:
    """Whether the request sends the credentials elsewhere (or otherwise) than `stored` did."""
    if request.driver != stored.driver or request.address != stored.address:
        return True
    return any(plain.get(name) != stored.options.get(name) for name in kind.target_options)


def shown_secrets(kind: DriverKind, opened: OpenBmc) -> dict[str, Any]:
    """What the API shows of the secret options: `has_<name>`, and an outline where the option
    has one (`header_names` for a webhook's headers)."""
    shown: dict[str, Any] = {}
    for name in kind.secret_options:
        value = opened.secret_options.get(name, "")
        shown[f"has_{name}"] = bool(value)
        outline = kind.options[name].outline
        if outline is not None:
            key, describe = outline
            try:
                shown[key] = describe(value) if value else []
            except ValueError:
                shown[key] = []
    return shown


def password_binding(machine_id: int) -> str:
    return f"bmc-password:machine:{machine_id}"


def options_binding(machine_id: int) -> str:
    return f"bmc-options:machine:{machine_id}"
