"""PCI vendor and device names from the host's pci.ids, read once, when first asked.

Debian installs the PCI ID Repository's list as /usr/share/misc/pci.ids (package `pci.ids`,
pulled in by pciutils); Fedora and others as /usr/share/hwdata/pci.ids. Parsing its ~1.3 MB
takes tens of milliseconds, so it happens on the first lookup, not at start-up, and a host
without the file simply has no names (the inventory's names are then None).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from edgebox.domain.pci_ids import PciIds, PciNameLookup, parse_pci_ids

log = logging.getLogger(__name__)

PCI_IDS_PATHS = (Path("/usr/share/misc/pci.ids"), Path("/usr/share/hwdata/pci.ids"))


@functools.cache
def _load(paths: tuple[Path, ...]) -> PciIds:
    for path in paths:
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                ids = parse_pci_ids(f)
        except OSError:
            continue
        log.info("PCI names loaded path=%s vendors=%d", path, len(ids.vendors))
        return ids
    log.info("no pci.ids found (looked at %s): PCI names unknown", ", ".join(map(str, paths)))
    return PciIds()


def pci_name_lookup(paths: tuple[Path, ...] = PCI_IDS_PATHS) -> PciNameLookup:
    """A lookup for `parse_bundle`; the file is read on its first call, then kept."""

    def names(vendor_id: str, device_id: str) -> tuple[str | None, str | None]:
        return _load(paths).names(vendor_id, device_id)

    return names
