"""edgebox's configuration: the schema, its defaults, and its validation.

The configuration file is YAML, but this module sees only the plain data it decodes to
(dicts, lists, strings, numbers), so it stays in the standard library and is tested without
files. Every section is a frozen dataclass; `parse_settings()` walks the data against the
dataclasses and fails on the first problem with the key path and what was expected:

    /etc/edgebox/edgebox.yaml: api.port: expected an integer from 1 to 65535, got 'http'

An unknown key is an error too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from edgebox.domain.commissioning_settings import CommissioningSettings
from edgebox.domain.deploy_settings import DeploySettings
from edgebox.domain.power_targets import TargetError, TargetPolicy, parse_target_policy
from edgebox.domain.tftp_settings import TftpSettings, check_tftp_settings

T = TypeVar("T")
DhcpMode = Literal["server", "proxy"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
Synchronous = Literal["full", "normal"]


class ConfigError(Exception):
    """The configuration is not valid; the message names the file, the key and the remedy."""


def _port(default: int) -> Any:
    # 0 asks the kernel for a free port (tests, and a second instance on one box).
    return field(default=default, metadata={"min": 0, "max": 65535})


@dataclass(frozen=True, slots=True)
class ListenSettings:
    host: str = "127.0.0.1"
    port: int = _port(5240)
    # Listen inside this network namespace (the virtual lab: machines on the lab's bridge
    # reach the boot server there while the API stays on the host). Empty: here.
    netns: str = ""


@dataclass(frozen=True, slots=True)
class MachineHttpSettings(ListenSettings):
    host: str = "0.0.0.0"  # noqa: S104 - machines reach it from the provisioning network
    port: int = _port(5248)
    # Requests a second each address may make without a credential (boot scripts, loaders,
    # kernels, the token's initrd, the seed): docs/security.md. 0: no limit. Beyond the burst
    # the answer is 429 with Retry-After; a booting machine makes a handful.
    rate_limit: float = field(default=20.0, metadata={"min": 0.0, "max": 100_000.0})
    rate_burst: int = field(default=200, metadata={"min": 1, "max": 1_000_000})


@dataclass(frozen=True, slots=True)
class SiteSettings:
    # A human name for this site, shown in the UI and at the hub. Defaults to the host name.
    name: str = ""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    # "full" fsyncs the WAL on every commit: a committed write survives a power cut. "normal"
    # may lose the last commits on power loss (never on a process crash); only for lab use.
    synchronous: Synchronous = "full"
    # How long the writer waits for more writes before it commits a group, in milliseconds.
    group_commit_ms: float = field(default=0.0, metadata={"min": 0.0, "max": 100.0})


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: LogLevel = "info"
    format: LogFormat = "text"


@dataclass(frozen=True, slots=True)
class AuthSettings:
    # Print a new admin token at the first start (when the database has no user yet).
    bootstrap_admin: bool = True


def _required() -> Any:
    return field(default="", metadata={"required": True})


@dataclass(frozen=True, slots=True)
class DhcpInterfaceSettings:
    # The interface to serve. DHCP never runs on a link the configuration does not name.
    name: str = _required()
    # The network namespace that holds it (labs and tests); empty: the host's namespace.
    netns: str = ""
    # server: addresses and boot options; proxy: boot options only, beside another server.
    mode: DhcpMode = "server"


@dataclass(frozen=True, slots=True)
class RangeSettings:
    start: str = _required()
    end: str = _required()


@dataclass(frozen=True, slots=True)
class RouteSettings:
    destination: str = _required()  # a CIDR
    gateway: str = _required()


@dataclass(frozen=True, slots=True)
class BootLoaderSettings:
    bios: str = "undionly.kpxe"
    uefi_x64: str = "snponly.efi"  # or ipxe.efi, for NICs whose UEFI driver misbehaves
    uefi_http: str = "ipxe.efi"
    arm64: str = "ipxe-arm64.efi"


@dataclass(frozen=True, slots=True)
class SubnetSettings:
    cidr: str = _required()
    # The served interface this subnet is on; empty for a subnet reached through a relay.
    interface: str = ""
    ranges: tuple[RangeSettings, ...] = ()
    router: str = ""
    dns: tuple[str, ...] = ()
    ntp: tuple[str, ...] = ()
    domain: str = ""
    domain_search: tuple[str, ...] = ()
    mtu: int = field(default=0, metadata={"min": 0, "max": 65535})
    lease_time: int = field(default=3600, metadata={"min": 60, "max": 31_536_000})
    routes: tuple[RouteSettings, ...] = ()
    boot: BootLoaderSettings = BootLoaderSettings()


@dataclass(frozen=True, slots=True)
class DhcpSettings:
    interfaces: tuple[DhcpInterfaceSettings, ...] = ()
    subnets: tuple[SubnetSettings, ...] = ()
    # ARP probe before offering an address never used on its link; 0 turns it off.
    arp_probe_ms: int = field(default=250, metadata={"min": 0, "max": 5000})
    # A DISCOVER to find other DHCP servers on served links, at start and then this often.
    rogue_probe_interval: int = field(default=600, metadata={"min": 0, "max": 86400})


@dataclass(frozen=True, slots=True)
class BootSettings:
    # Where the network-boot loaders are (undionly.kpxe, snponly.efi, ipxe.efi and their
    # SHA256SUMS, from scripts/fetch-loaders). Empty: <data_dir>/firmware-images.
    loaders_dir: str = ""
    # Where imported kernels and initrds live. Empty: <data_dir>/boot-resources.
    resources_dir: str = ""
    # How long the token in an ephemeral environment's kernel command line is valid, in s.
    token_ttl: int = field(default=7200, metadata={"min": 60, "max": 7 * 86400})
    # Appended to the ephemeral environment's kernel command line (e.g. console=ttyS1,115200).
    kernel_params: str = "console=tty0 console=ttyS0,115200"


@dataclass(frozen=True, slots=True)
class PowerSettings:
    # BMC operations in flight at once across the site (each machine: one at a time).
    max_concurrent: int = field(default=16, metadata={"min": 1, "max": 1024})
    # Tries of an operation that fails in a way retrying can help (a timeout, a busy BMC).
    attempts: int = field(default=4, metadata={"min": 1, "max": 20})
    # Wait before the first retry, in s; doubled for each later one (at most 60 s).
    retry_backoff: float = field(default=2.0, metadata={"min": 0.0, "max": 60.0})
    # Seconds between power-state polls of the machines with a BMC; 0 turns polling off.
    poll_interval: int = field(default=300, metadata={"min": 0, "max": 86400})
    # Seconds one driver call may take before it counts as a timeout (retryable).
    call_timeout: float = field(default=30.0, metadata={"min": 1.0, "max": 600.0})
    # IPMI worker processes (one per BMC in use, ~30 MiB each) alive at once. A call that
    # needs one beyond this waits, within its deadline, for an idle one to end.
    ipmi_max_workers: int = field(default=32, metadata={"min": 1, "max": 1024})
    # Networks (CIDRs, or single addresses) power drivers may connect to although they are
    # refused by default: loopback, link-local, multicast; a cloud metadata address only when
    # listed exactly (see domain/power_targets.py). E.g. [127.0.0.1/32] for BMC simulators.
    allow_targets: tuple[str, ...] = ()
    # Only the networks in allow_targets may be power targets at all.
    allow_targets_only: bool = False


@dataclass(frozen=True, slots=True)
class ImageSettings:
    # Public keys (raw 32 bytes or PEM) whose signatures on image manifests are trusted. An
    # image signed by no key here, unsigned, or changed after signing is refused.
    trusted_keys: tuple[str, ...] = ()
    # The cache's size in bytes; least recently used images are evicted beyond it (never a
    # pinned one, nor one a deploying machine uses). 0: no limit.
    budget_bytes: int = field(default=0, metadata={"min": 0, "max": 1 << 60})
    # Where the images live. Empty: <data_dir>/images.
    dir: str = ""


@dataclass(frozen=True, slots=True)
class EventSettings:
    # The event log is kept this many days, and at most this many events (the newest); the
    # older are deleted every `prune_interval` seconds. 0: no limit of that kind. Events the
    # hub has not acknowledged are never deleted (services/event_retention.py).
    keep_days: float = field(default=90.0, metadata={"min": 0.0, "max": 36_500.0})
    keep_count: int = field(default=1_000_000, metadata={"min": 0, "max": 1 << 40})
    prune_interval: float = field(default=600.0, metadata={"min": 1.0, "max": 86_400.0})


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: str = ""
    site: SiteSettings = SiteSettings()
    api: ListenSettings = ListenSettings()
    machine_http: MachineHttpSettings = MachineHttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()
    auth: AuthSettings = AuthSettings()
    dhcp: DhcpSettings = DhcpSettings()
    boot: BootSettings = BootSettings()
    tftp: TftpSettings = field(default_factory=TftpSettings)
    commissioning: CommissioningSettings = field(default_factory=CommissioningSettings)
    power: PowerSettings = PowerSettings()
    images: ImageSettings = ImageSettings()
    deploy: DeploySettings = field(default_factory=DeploySettings)
    events: EventSettings = EventSettings()

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "edgebox.db"

    @property
    def loaders_dir(self) -> Path:
        return Path(self.boot.loaders_dir or Path(self.data_dir) / "firmware-images")

    @property
    def secret_key_path(self) -> Path:
        # Beside the database, never inside it: a copy of the database alone (a backup, a
        # support bundle) does not carry the key to its BMC passwords.
        return self.database_path.with_name("secrets.key")

    @property
    def resources_dir(self) -> Path:
        return Path(self.boot.resources_dir or Path(self.data_dir) / "boot-resources")

    @property
    def images_dir(self) -> Path:
        return Path(self.images.dir or Path(self.data_dir) / "images")


def default_data_dir(env: Mapping[str, str], is_root: bool, home: Path) -> str:
    """`$SNAP_COMMON` in a snap, /var/lib/edgebox as root, else the XDG data directory."""
    if env.get("SNAP_COMMON"):
        return env["SNAP_COMMON"]
    if is_root:
        return "/var/lib/edgebox"
    xdg = env.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return str(Path(xdg) / "edgebox")


def parse_settings(data: object, source: str, default_dir: str) -> Settings:
    """Validate decoded YAML against the schema. `source` names the file in error messages."""
    if data is None:
        data = {}
    settings = _build(Settings, data, source, "")
    assert isinstance(settings, Settings)
    if not settings.data_dir:
        settings = dataclasses.replace(settings, data_dir=default_dir)
    _check_hosts(settings, source)
    # Imported here: that module builds on the dataclasses of this one.
    from edgebox.domain.dhcp_settings_check import check_dhcp_settings  # noqa: PLC0415

    check_dhcp_settings(settings.dhcp, source)
    check_tftp_settings(settings.tftp, source)
    _check_power(settings.power, source)
    return settings


def parse_section(cls: type[T], data: object, source: str, path: str) -> T:
    """Validate one section (e.g. a subnet sent to the API) against its dataclass."""
    built = _build(cls, data, source, path)
    assert isinstance(built, cls)
    return built


def _check_hosts(settings: Settings, source: str) -> None:
    for key, listen in (("api", settings.api), ("machine_http", settings.machine_http)):
        try:
            ipaddress.ip_address(listen.host)
        except ValueError:
            raise ConfigError(
                f"{source}: {key}.host: expected an IP address such as 127.0.0.1, "
                f"got {listen.host!r}"
            ) from None


def _check_power(power: PowerSettings, source: str) -> None:
    for i, entry in enumerate(power.allow_targets):
        try:
            parse_target_policy([entry])
        except TargetError as exc:
            raise ConfigError(f"{source}: power.allow_targets[{i}]: {exc}") from None
    if power.allow_targets_only and not power.allow_targets:
        raise ConfigError(
            f"{source}: power.allow_targets_only: true, but power.allow_targets is empty, so"
            " no BMC could be reached; list the BMC networks in power.allow_targets"
        )


def power_target_policy(power: PowerSettings) -> TargetPolicy:
    """The checked allow-list of `power` as a policy (parse_settings checked its entries)."""
    return parse_target_policy(power.allow_targets, only_allowed=power.allow_targets_only)


def _build(cls: type[Any], data: object, source: str, path: str) -> object:
    if not isinstance(data, dict):
        where = path or "the top level"
        raise ConfigError(f"{source}: {where}: expected a mapping of keys, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"{source}: {key}: unknown key (known keys here: {known})")
    values = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else str(name)
        values[name] = _convert(hints[name], fields[name], value, source, key)
    for name, spec in fields.items():
        if spec.metadata.get("required") and name not in values:
            key = f"{path}.{name}" if path else name
            raise ConfigError(f"{source}: {key}: this key is required")
    return cls(**values)


def _convert(hint: Any, spec: dataclasses.Field[Any], value: object, source: str, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, source, key)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key}: expected a list, got {_show(value)}")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, spec, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            expected = " or ".join(repr(c) for c in choices)
            raise ConfigError(f"{source}: {key}: expected {expected}, got {_show(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true or false, got {_show(value)}")
        return value
    if hint in (int, float):
        return _number(hint, spec, value, source, key)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"settings field {key} has an unsupported type {hint!r}")  # pragma: no cover


def _number(hint: type, spec: dataclasses.Field[Any], value: object, source: str, key: str) -> Any:
    ok_types: tuple[type, ...] = (int,) if hint is int else (int, float)
    low, high = spec.metadata.get("min"), spec.metadata.get("max")
    kind = "an integer" if hint is int else "a number"
    bounds = f" from {low} to {high}" if low is not None else ""
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise ConfigError(f"{source}: {key}: expected {kind}{bounds}, got {_show(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{source}: {key}: expected {kind}{bounds}, got {value}")
    return hint(value)


def _show(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    return repr(value)


__all__ = [
    "ConfigError",
    "DatabaseSettings",
    "EventSettings",
    "ListenSettings",
    "LogSettings",
    "MachineHttpSettings",
    "Settings",
    "SiteSettings",
    "default_data_dir",
    "parse_settings",
]
