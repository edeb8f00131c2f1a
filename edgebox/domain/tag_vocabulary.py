"""The names a tag definition may use, and the values they take for one machine.

The inventory (docs/commissioning-contract.md §2) is nested JSON; a tag definition should not
have to know how it nests. This module is the one place that maps it to a flat vocabulary:

- fields, one value per machine: `memory_gib`, `cpu.cores`, `firmware.type`, ...
- collections, a list of elements per machine: `disk`, `nic`, `gpu`, `pci`, `dimm`; each
  element has fields of its own, named through the collection (`disk.type`, `gpu.vendor`).

Every name has one type (number, string, boolean, list of strings). A value of another type in
the inventory (a string where a number belongs, say) becomes null here: it is never coerced or
guessed, so the evaluator meets only the types the parser checked the expression against.

A few fields are derived, because the raw units make natural conditions awkward:
`memory_gib` (and `memory_mib`) is the installed memory — the sum of the DIMM sizes when the
inventory lists DIMMs that all have a size, else `memory.total_mib` — so that a 256 GiB machine
is `memory_gib >= 256` even though the kernel's MemTotal is a few percent lower. `disk.size_gib`
is binary (2^30 bytes), `disk.size_gb` decimal (10^9 bytes, as disks are labelled);
`nic.speed_gbps` and `dimm.size_gib` likewise.

The enlistment inventory the agent sends before commissioning (packaging/ephemeral/README.md)
names two things differently, `dmi` for `system` and a top-level `memory_mib`; both are read
as fallbacks so that tags work as soon as a machine has enlisted.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ELEMENTS = 4096  # per collection: bounds the cost of one evaluation, whatever a machine sends


class ValueType(enum.Enum):
    NUMBER = "a number"
    STRING = "a string"
    BOOLEAN = "a boolean"
    STRINGS = "a list of strings"


Value = str | int | float | bool | tuple[str, ...] | None
Element = Mapping[str, Value]

_N, _S, _B, _L = ValueType.NUMBER, ValueType.STRING, ValueType.BOOLEAN, ValueType.STRINGS

FIELDS: Mapping[str, ValueType] = {
    "arch": _S,
    "memory_gib": _N,
    "memory_mib": _N,
    "cpu.model": _S,
    "cpu.arch": _S,
    "cpu.sockets": _N,
    "cpu.cores": _N,
    "cpu.threads": _N,
    "cpu.mhz": _N,
    "cpu.flags": _L,
    "system.vendor": _S,
    "system.product": _S,
    "system.serial": _S,
    "system.uuid": _S,
    "firmware.type": _S,
    "firmware.secure_boot": _B,
    "firmware.vendor": _S,
    "firmware.version": _S,
    "firmware.date": _S,
    "bmc.present": _B,
    "bmc.type": _S,
}

COLLECTIONS: Mapping[str, Mapping[str, ValueType]] = {
    "disk": {
        "name": _S,
        "type": _S,
        "size_bytes": _N,
        "size_gib": _N,
        "size_gb": _N,
        "model": _S,
        "serial": _S,
        "firmware": _S,
        "logical_sector": _N,
        "physical_sector": _N,
        "rotational": _B,
        "pci_address": _S,
    },
    "nic": {
        "name": _S,
        "mac": _S,
        "driver": _S,
        "speed_mbps": _N,
        "speed_gbps": _N,
        "link": _B,
        "pci_address": _S,
    },
    "gpu": {"address": _S, "vendor": _S, "vendor_id": _S, "device_id": _S, "name": _S},
    "pci": {
        "address": _S,
        "vendor_id": _S,
        "device_id": _S,
        "class_id": _S,
        "vendor": _S,
        "device": _S,
        "kind": _S,
        "driver": _S,
    },
    "dimm": {
        "locator": _S,
        "size_mib": _N,
        "size_gib": _N,
        "type": _S,
        "speed_mts": _N,
        "manufacturer": _S,
        "serial": _S,
        "part_number": _S,
    },
}


def all_names() -> list[str]:
    """Every name an expression may use, for suggestions and documentation."""
    names = list(FIELDS)
    for collection, fields in COLLECTIONS.items():
        names.append(collection)
        names += [f"{collection}.{field}" for field in fields]
    return names


@dataclass(frozen=True, slots=True)
class TagContext:
    """One machine as a tag definition sees it. `reported` is False for a machine that has
    never sent an inventory: every definition is false for it (see `TagExpression.evaluate`)."""

    fields: Mapping[str, Value]
    collections: Mapping[str, tuple[Element, ...]]
    reported: bool = True


NOT_REPORTED = TagContext({}, {name: () for name in COLLECTIONS}, reported=False)


def tag_context(
    inventory: Mapping[str, Any] | None, names: Collection[str] | None = None
) -> TagContext:
    """The evaluation environment for a normalized inventory (None: never reported).

    `names` (see `TagExpression.names`) limits the collections' elements to the fields an
    expression uses: building every field of a hundred PCI functions costs far more than
    evaluating most definitions. The machine's own fields are always all there.
    """
    if inventory is None:
        return NOT_REPORTED
    cpu = _mapping(inventory.get("cpu"))
    system = _mapping(inventory.get("system")) or _mapping(inventory.get("dmi"))
    firmware = _mapping(inventory.get("firmware"))
    bmc = _mapping(inventory.get("bmc"))
    memory = _mapping(inventory.get("memory"))
    memory_mib = _installed_mib(memory, inventory.get("memory_mib"))
    raw: dict[str, object] = {
        "arch": cpu.get("arch"),
        "memory_mib": memory_mib,
        "memory_gib": None if memory_mib is None else memory_mib / 1024,
        **{f"cpu.{k}": cpu.get(k) for k in ("model", "arch", "sockets", "cores", "threads")},
        "cpu.mhz": cpu.get("mhz"),
        "cpu.flags": cpu.get("flags"),
        **{f"system.{k}": system.get(k) for k in ("vendor", "product", "serial", "uuid")},
        **{
            f"firmware.{k}": firmware.get(k)
            for k in ("type", "secure_boot", "vendor", "version", "date")
        },
        "bmc.present": bmc.get("present"),
        "bmc.type": bmc.get("type"),
    }
    fields = {name: typed(raw[name], kind) for name, kind in FIELDS.items()}
    sources = {
        "disk": inventory.get("disks"),
        "nic": inventory.get("nics"),
        "gpu": inventory.get("gpus"),
        "pci": inventory.get("pci"),
        "dimm": memory.get("dimms"),
    }
    collections = {
        collection: _elements(source, collection, _used(collection, names))
        for collection, source in sources.items()
    }
    return TagContext(fields, collections)


def typed(value: object, kind: ValueType) -> Value:
    """`value` if it has type `kind`, else None. JSON numbers may be NaN or infinite in
    Python's reading of them; those are not numbers a condition can mean."""
    if kind is ValueType.NUMBER:
        return _number(value)
    if kind is ValueType.STRING:
        return value if isinstance(value, str) else None
    if kind is ValueType.BOOLEAN:
        return value if isinstance(value, bool) else None
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, str))
    return None


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ratio(field: str, divisor: float) -> Callable[[Mapping[str, Any]], object]:
    def derive(raw: Mapping[str, Any]) -> object:
        value = _number(raw.get(field))
        return None if value is None else value / divisor

    return derive


_DERIVED: Mapping[str, Mapping[str, Callable[[Mapping[str, Any]], object]]] = {
    "disk": {"size_gib": _ratio("size_bytes", 2**30), "size_gb": _ratio("size_bytes", 1e9)},
    "nic": {"speed_gbps": _ratio("speed_mbps", 1000)},
    "dimm": {"size_gib": _ratio("size_mib", 1024)},
}


def _used(collection: str, names: Collection[str] | None) -> Collection[str]:
    """The fields of `collection`'s elements that `names` needs (all when `names` is None)."""
    fields = COLLECTIONS[collection]
    if names is None:
        return fields.keys()
    return [field for field in fields if f"{collection}.{field}" in names]


def _elements(value: object, collection: str, used: Collection[str]) -> tuple[Element, ...]:
    if not isinstance(value, list):
        return ()
    fields = COLLECTIONS[collection]
    derived = _DERIVED.get(collection, {})
    elements: list[Element] = []
    for raw in value[:MAX_ELEMENTS]:
        if not isinstance(raw, Mapping):
            continue
        element = {
            name: typed(derived[name](raw) if name in derived else raw.get(name), fields[name])
            for name in used
        }
        elements.append(element)
    return tuple(elements)


def _installed_mib(memory: Mapping[str, Any], enlisted_mib: object) -> float | int | None:
    """The DIMMs' sizes added up when every listed DIMM has one (the rule of
    `hardware_bundle.memory_of`, which then reports the same as total_mib), else total_mib,
    else what the enlistment inventory said."""
    dimms = memory.get("dimms")
    listed = dimms[:MAX_ELEMENTS] if isinstance(dimms, list) else []
    sizes = [
        _number(dimm.get("size_mib")) if isinstance(dimm, Mapping) else None for dimm in listed
    ]
    if sizes and None not in sizes:
        return sum(size for size in sizes if size is not None)
    total = _number(memory.get("total_mib"))
    return total if total is not None else _number(enlisted_mib)
