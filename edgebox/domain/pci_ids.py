"""Names of PCI vendors and devices, from the text of a pci.ids database.

pci.ids (the PCI ID Repository's list, as Debian's `pci.ids` package and pciutils install it)
is line-based: "VVVV  Vendor name" at column 0, "\\tDDDD  Device name" under its vendor,
"\\t\\tSSSS SSSS  Subsystem name" under its device, "#" comments, and after the vendors a
class list whose lines start with "C ". The file is read by a service (edgebox/services/
pci_names.py); this module only parses text, so it is tested without the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# (vendor_id, device_id) -> (vendor name, device name); ids are lowercase hex without 0x.
PciNameLookup = Callable[[str, str], tuple[str | None, str | None]]


@dataclass(frozen=True, slots=True)
class PciIds:
    vendors: dict[str, str] = field(default_factory=dict)
    devices: dict[tuple[str, str], str] = field(default_factory=dict)

    def names(self, vendor_id: str, device_id: str) -> tuple[str | None, str | None]:
        vendor_id, device_id = vendor_id.lower(), device_id.lower()
        return self.vendors.get(vendor_id), self.devices.get((vendor_id, device_id))


def _id_and_name(line: str) -> tuple[str, str] | None:
    ident, _, name = line.partition(" ")
    if len(ident) != 4 or not name.strip():
        return None
    try:
        int(ident, 16)
    except ValueError:
        return None
    return ident.lower(), name.strip()


def parse_pci_ids(lines: Iterable[str]) -> PciIds:
    """Vendor and device names; subsystems and classes are skipped, malformed lines too."""
    ids = PciIds()
    vendor: str | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("C "):
            break  # the class list: no vendors after it
        if line.startswith("\t\t"):
            continue
        if line.startswith("\t"):
            entry = _id_and_name(line[1:])
            if vendor is not None and entry is not None:
                ids.devices[(vendor, entry[0])] = entry[1]
            continue
        entry = _id_and_name(line)
        vendor = entry[0] if entry else None
        if entry:
            ids.vendors[entry[0]] = entry[1]
    return ids
