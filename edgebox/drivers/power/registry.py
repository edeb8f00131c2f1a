"""The power drivers by name. Each module is imported only when its driver is first used, so a
site without IPMI BMCs never pays for importing pyghmi."""

from __future__ import annotations

import importlib

from edgebox.drivers.power.base import DriverKind

_MODULES = {
    "ipmi": "edgebox.drivers.power.ipmi",
    "redfish": "edgebox.drivers.power.redfish",
    "webhook": "edgebox.drivers.power.webhook",
    "manual": "edgebox.drivers.power.manual",
    "lab": "edgebox.drivers.power.lab_qmp",
}

DRIVER_NAMES = tuple(sorted(_MODULES))


def driver_kind(name: str) -> DriverKind:
    """The driver called `name`; raises ValueError listing the known ones."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise ValueError(f"unknown power driver {name!r} (known: {', '.join(DRIVER_NAMES)})")
    kind: DriverKind = importlib.import_module(module_name).KIND
    return kind
