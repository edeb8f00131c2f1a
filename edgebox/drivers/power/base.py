"""The protocol every power driver implements, its configuration and its error split.

Following MAAS, a driver failure is either *fatal* (bad credentials, an unsupported operation,
a misconfigured BMC: retrying cannot help, a person must act) or *retryable* (a timeout, a busy
or unreachable BMC: the power queue retries with backoff). Every error message names the BMC's
address so an operator reading an event knows which box to look at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from edgebox.domain.power import BootDevice, PowerState
from edgebox.domain.power_targets import TargetPolicy
from edgebox.drivers.power.targets import TargetGuard
from edgebox.drivers.power.worker_slots import WorkerSlots

OptionValue = str | int | bool


class PowerError(Exception):
    """A driver call failed. `fatal` says whether retrying can help."""

    fatal: ClassVar[bool] = False

    def __init__(self, address: str, message: str) -> None:
        self.address = address
        self.message = message
        super().__init__(f"BMC {address}: {message}" if address else message)


class FatalPowerError(PowerError):
    """Retrying cannot help: wrong credentials, unsupported operation, bad configuration."""

    fatal = True


class RetryablePowerError(PowerError):
    """Retrying may help: a timeout, a busy or unreachable BMC."""

    fatal = False


class ManualActionRequired(PowerError):
    """No BMC can do this: a person must (the manual driver). The queue waits and says so."""

    fatal = False


@dataclass(frozen=True, slots=True)
class BmcConfig:
    """How to reach one machine's BMC. `password` is clear text only in memory."""

    driver: str
    address: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    # Secret options (k_g, headers) are in here too, in clear text, only in memory.
    options: Mapping[str, OptionValue] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One driver option: its type, default and a sentence for error messages and the CLI.

    A `secret` option (a key, a header with an API token) is sealed at rest like the password
    and never shown: the API says only that it is set, and `outline` (if any) what may be shown
    of it (the webhook's header names). A `target` option says where or how the credentials
    are sent (a URL, a port, TLS verification): changing it, like changing the driver or the
    address, drops the stored secrets unless new ones come with the change.
    """

    kind: type[str] | type[int] | type[bool]
    default: OptionValue
    help: str
    choices: tuple[OptionValue, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    secret: bool = False
    target: bool = False
    # What the API may show of a secret option: (its key, e.g. "header_names"; a function of
    # the value that gives the parts that are not secret).
    outline: tuple[str, Callable[[str], list[str]]] | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A host a driver will connect to, and what in its configuration names it."""

    source: str  # "address", or "option on_url"
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class DriverEnv:
    """What drivers share, made once by the power service from its settings: the check of
    where they may connect, and the cap on worker processes."""

    targets: TargetGuard
    workers: WorkerSlots

    @classmethod
    def strict(cls, workers: int = 32) -> DriverEnv:
        """No allow-list: the targets refused by default stay refused."""
        return cls(TargetGuard(TargetPolicy()), WorkerSlots(workers))


class PowerDriver(Protocol):
    """One BMC. Methods are coroutines that must never block the event loop."""

    async def power_on(self) -> None: ...

    async def power_off(self, *, soft: bool = False) -> None: ...

    async def power_cycle(self) -> None: ...

    async def query(self) -> PowerState: ...

    async def set_boot_device(self, device: BootDevice, *, once: bool = True) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverKind:
    """A registered driver: its name, what it needs and how to make one."""

    name: str
    description: str
    options: Mapping[str, OptionSpec]
    needs_address: bool
    create: Callable[[BmcConfig, DriverEnv], PowerDriver]
    # The hosts a configuration makes the driver connect to (ValueError if it is wrong).
    targets: Callable[[BmcConfig], list[Target]] = lambda config: []

    @property
    def secret_options(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.options.items() if spec.secret)

    @property
    def target_options(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.options.items() if spec.target)


def check_options(kind: DriverKind, given: Mapping[str, object]) -> dict[str, OptionValue]:
    """Options with defaults filled in; raises ValueError naming the option that is wrong."""
    unknown = sorted(set(given) - set(kind.options))
    if unknown:
        known = ", ".join(sorted(kind.options)) or "none"
        raise ValueError(f"unknown option {unknown[0]!r} for driver {kind.name} (known: {known})")
    checked: dict[str, OptionValue] = {}
    for name, spec in kind.options.items():
        value = given.get(name, spec.default)
        checked[name] = _check_option(name, spec, value)
    return checked


def _check_option(name: str, spec: OptionSpec, value: object) -> OptionValue:
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"option {name}: expected true or false, got {value!r}")
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"option {name}: expected an integer, got {value!r}")
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise ValueError(
                f"option {name}: expected an integer from {spec.minimum} to {spec.maximum},"
                f" got {value}"
            )
    elif not isinstance(value, str):
        raise ValueError(f"option {name}: expected a string, got {value!r}")
    if spec.choices and value not in spec.choices:
        allowed = ", ".join(str(c) for c in spec.choices)
        raise ValueError(f"option {name}: expected one of {allowed}, got {value!r}")
    return value
