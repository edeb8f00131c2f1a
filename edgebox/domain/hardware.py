"""A machine's hardware as people read it, from whichever inventory its agent reported.

Two shapes reach the store: the agent's enlistment inventory (`dmi`, `cpu` with sockets, cores,
threads and model, `memory_mib`, `disks`, `nics`) and the commissioned one that
hardware_bundle.parse_bundle makes (`system`, `cpu` with `arch`, `memory.total_mib`, `disks`,
`nics`, `gpus`, ...). `hardware_of` reads either into one `Hardware`; `summary_of` keeps the
few numbers a machine list shows per row (MAAS's cores, RAM and storage columns), which the
store writes beside the inventory so that listing thousands of machines parses no inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# `uname -m` and Debian's names for the same architecture (allocation shares them).
ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv8": "arm64",
    "armv7l": "armhf", "i686": "i386",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Disk:
    name: str
    size_bytes: int | None
    model: str | None
    serial: str | None
    kind: str | None  # ssd | hdd | nvme | None (unknown)


@dataclass(frozen=True, slots=True)
class Nic:
    name: str
    mac: str | None
    driver: str | None
    speed_mbps: int | None


@dataclass(frozen=True, slots=True)
class Gpu:
    vendor: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Hardware:
    vendor: str | None
    product: str | None
    serial: str | None
    cpu_model: str | None
    arch: str | None  # Debian's name (amd64), None when the inventory does not say
    sockets: int | None
    cores: int | None
    threads: int | None
    memory_mib: int | None
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...]
    gpus: tuple[Gpu, ...]

    @property
    def storage_bytes(self) -> int | None:
        sizes = [d.size_bytes for d in self.disks if d.size_bytes is not None]
        return sum(sizes) if sizes else None


@dataclass(frozen=True, slots=True)
class HardwareSummary:
    """What a machine list shows per row; every field None until an inventory says it."""

    cores: int | None = None
    threads: int | None = None
    memory_mib: int | None = None
    storage_bytes: int | None = None
    disks: int | None = None
    gpus: int | None = None
    arch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareSummary:
        return cls(
            cores=_int(data.get("cores")),
            threads=_int(data.get("threads")),
            memory_mib=_int(data.get("memory_mib")),
            storage_bytes=_int(data.get("storage_bytes")),
            disks=_int(data.get("disks")),
            gpus=_int(data.get("gpus")),
            arch=_text(data.get("arch")),
        )


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _text(value: object) -> str | None:
    return str(value).strip() or None if isinstance(value, str | int | float) else None


def _section(inventory: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = inventory.get(name)
    return value if isinstance(value, Mapping) else {}


def _items(inventory: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = inventory.get(name)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def normal_arch(name: str) -> str:
    name = name.strip().lower()
    return ARCH_ALIASES.get(name, name)


def hardware_of(inventory: Mapping[str, Any]) -> Hardware:
    """Either inventory shape as one `Hardware`; what it lacks is None or empty."""
    system = _section(inventory, "system") or _section(inventory, "dmi")
    cpu = _section(inventory, "cpu")
    memory = _section(inventory, "memory")
    arch = _text(cpu.get("arch"))
    disks = tuple(
        Disk(
            name=_text(d.get("name")) or "?",
            size_bytes=_int(d.get("size_bytes")),
            model=_text(d.get("model")),
            serial=_text(d.get("serial")),
            kind=_text(d.get("type")),
        )
        for d in _items(inventory, "disks")
    )
    nics = tuple(
        Nic(
            name=_text(n.get("name")) or "?",
            mac=_text(n.get("mac")),
            driver=_text(n.get("driver")),
            speed_mbps=_int(n.get("speed_mbps")),
        )
        for n in _items(inventory, "nics")
    )
    gpus = tuple(
        Gpu(vendor=_text(g.get("vendor")) or "other", name=_text(g.get("name")))
        for g in _items(inventory, "gpus")
    )
    return Hardware(
        vendor=_text(system.get("vendor")),
        product=_text(system.get("product")),
        serial=_text(system.get("serial")),
        cpu_model=_text(cpu.get("model")),
        arch=normal_arch(arch) if arch else None,
        sockets=_int(cpu.get("sockets")),
        cores=_int(cpu.get("cores")),
        threads=_int(cpu.get("threads")),
        memory_mib=_int(memory.get("total_mib")) or _int(inventory.get("memory_mib")),
        disks=disks,
        nics=nics,
        gpus=gpus,
    )


def summary_of(inventory: Mapping[str, Any]) -> HardwareSummary:
    hw = hardware_of(inventory)
    return HardwareSummary(
        cores=hw.cores,
        threads=hw.threads,
        memory_mib=hw.memory_mib,
        storage_bytes=hw.storage_bytes,
        disks=len(hw.disks),
        gpus=len(hw.gpus) if isinstance(inventory.get("gpus"), list) else None,
        arch=hw.arch,
    )
