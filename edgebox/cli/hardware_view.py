"""A machine's hardware on the command line: the list's columns, `show`'s summary, and
`edgebox machines inventory`.

The list reads the per-row summary the API sends with each machine (`hardware`); `show` and
`inventory` read the whole inventory (`GET /machines/{id}/inventory`) through
domain.hardware, which understands both the enlistment and the commissioned inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgebox.cli import render
from edgebox.domain.hardware import Hardware, hardware_of

HARDWARE_COLUMNS = ("ARCH", "CORES", "MEMORY", "STORAGE")
MIB = 1 << 20


def _arch(machine: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    # The inventory's architecture once commissioned; until then the machine's own field.
    arch = summary.get("arch") or str(machine.get("arch") or "").split("/", 1)[0]
    return render.text(arch)


def hardware_columns(machine: Mapping[str, Any]) -> list[str]:
    """ARCH, CORES, MEMORY, STORAGE for one row: "-" until an inventory says."""
    summary = machine.get("hardware") or {}
    memory = summary.get("memory_mib")
    storage = summary.get("storage_bytes")
    disks = summary.get("disks")
    storage_text = render.NONE if storage is None else render.size(storage)
    if storage is not None and disks:
        storage_text += f" ({disks} disk{'s' if disks != 1 else ''})"
    return [
        _arch(machine, summary),
        render.text(summary.get("cores")),
        render.NONE if memory is None else render.size(memory * MIB),
        storage_text,
    ]


def _cpu_line(hw: Hardware) -> str:
    counts = []
    if hw.sockets:
        counts.append(f"{hw.sockets} socket{'s' if hw.sockets != 1 else ''}")
    if hw.cores is not None:
        counts.append(f"{hw.cores} cores")
    if hw.threads is not None:
        counts.append(f"{hw.threads} threads")
    words = [hw.cpu_model or "", f"({', '.join(counts)})" if counts else "", hw.arch or ""]
    return " ".join(w for w in words if w) or render.NONE


def hardware_fields(inventory: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The hardware summary `machines show` prints under the machine's own fields."""
    hw = hardware_of(inventory)
    system = " ".join(w for w in (hw.vendor, hw.product) if w)
    if hw.serial:
        system += f" (serial {hw.serial})"
    fields = [
        ("system", system or render.NONE),
        ("cpu", _cpu_line(hw)),
        ("memory", render.NONE if hw.memory_mib is None else render.size(hw.memory_mib * MIB)),
    ]
    for index, disk in enumerate(hw.disks):
        words = [disk.name, render.size(disk.size_bytes) if disk.size_bytes else ""]
        words += [disk.kind or "", disk.model or "", f"serial {disk.serial}" if disk.serial else ""]
        fields.append(("disks" if index == 0 else "", " ".join(w for w in words if w)))
    if not hw.disks:
        fields.append(("disks", render.NONE))
    for index, nic in enumerate(hw.nics):
        speed = f"{nic.speed_mbps} Mb/s" if nic.speed_mbps and nic.speed_mbps > 0 else ""
        words = [nic.name, nic.mac or "", nic.driver or "", speed]
        fields.append(("nics" if index == 0 else "", " ".join(w for w in words if w)))
    if not hw.nics:
        fields.append(("nics", render.NONE))
    gpus = [" ".join(w for w in (gpu.vendor, gpu.name or "") if w) for gpu in hw.gpus]
    fields.append(("gpus", ", ".join(gpus) or render.NONE))
    return fields


def inventory_fields(inventory: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every section of the inventory, for `machines inventory` without --json: the summary,
    then each remaining section's items one a line."""
    fields = hardware_fields(inventory)
    shown = {"system", "dmi", "cpu", "memory", "memory_mib", "disks", "nics", "gpus"}
    for name, value in inventory.items():
        if name in shown:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            fields.append((name if index == 0 else "", _flat(item)))
        if not items:
            fields.append((name, render.NONE))
    return fields


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return " ".join(f"{k}={render.text(v)}" for k, v in value.items() if v not in (None, ""))
    return render.text(value)
