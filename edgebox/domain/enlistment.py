"""Recognising a machine that network-boots: by MAC first, then by SMBIOS UUID, then serial.

A machine whose NIC was replaced boots with a MAC edgebox has never seen; its SMBIOS UUID and
serial are the same, so it must not be enlisted twice (Digital Rebar scores a fingerprint the
same way). Firmware fills these fields with placeholders surprisingly often ("To Be Filled By
O.E.M.", all-zero or 03000200-0400-0500-0006-000700080009 UUIDs copied from a reference
board), and a placeholder must never match two different machines: such values are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgebox.domain.identifiers import parse_mac

# Values seen in real DMI tables that identify nothing.
_JUNK_SERIALS = frozenset(
    {
        "", "0", "00000000", "none", "n/a", "na", "null", "not specified", "not applicable",
        "to be filled by o.e.m.", "default string", "system serial number", "0123456789",
        "chassis serial number", "serial", "unknown",
    }
)  # fmt: skip
_JUNK_UUIDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",
        "00020003-0004-0005-0006-000700080009",
    }
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def usable_uuid(text: object) -> str:
    uuid = str(text or "").strip().lower()
    if not _UUID.match(uuid) or uuid in _JUNK_UUIDS:
        return ""
    return uuid


def usable_serial(text: object) -> str:
    serial = str(text or "").strip()
    if serial.lower() in _JUNK_SERIALS or len(set(serial)) <= 1:
        return ""
    return serial


@dataclass(frozen=True, slots=True)
class Identity:
    """What identifies the booting machine: its NICs' MACs and its DMI identifiers."""

    boot_mac: str
    macs: tuple[str, ...]  # every NIC, the boot NIC first
    smbios_uuid: str  # "" when absent or a placeholder
    serial: str  # "" when absent or a placeholder


class InventoryError(ValueError):
    """The agent sent an inventory that cannot be used; the message names the field."""


def identity_of(boot_mac: str, inventory: Mapping[str, Any]) -> Identity:
    dmi = inventory.get("dmi") or {}
    if not isinstance(dmi, Mapping):
        raise InventoryError("inventory.dmi must be an object")
    nics = inventory.get("nics") or []
    if not isinstance(nics, list):
        raise InventoryError("inventory.nics must be a list")
    macs = [boot_mac]
    for i, nic in enumerate(nics):
        if not isinstance(nic, Mapping) or not nic.get("mac"):
            continue
        try:
            mac = parse_mac(str(nic["mac"]))
        except ValueError as exc:
            raise InventoryError(f"inventory.nics[{i}].mac: {exc}") from None
        if mac not in macs and mac != "00:00:00:00:00:00":
            macs.append(mac)
    return Identity(
        boot_mac=boot_mac,
        macs=tuple(macs),
        smbios_uuid=usable_uuid(dmi.get("uuid")),
        serial=usable_serial(dmi.get("serial")),
    )
