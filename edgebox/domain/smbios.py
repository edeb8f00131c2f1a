"""SMBIOS structures that the kernel does not summarise in /sys/class/dmi/id.

Linux exposes every SMBIOS structure as /sys/firmware/dmi/entries/TYPE-N/raw: the formatted
area (a 4-byte header: type, length, handle; then the type's fields at fixed offsets) followed
by the string table (NUL-terminated strings, the table ending in an extra NUL). A string field
holds a 1-based index into that table; 0 means "no string". A field past the structure's
length did not exist in the SMBIOS version the firmware implements, and reads as unknown.

Decoded here (offsets from the DMTF SMBIOS reference, DSP0134):
- type 17, Memory Device (one per memory slot, §7.18): size, type, speed and the module's
  strings. An empty slot has size 0.
- type 38, IPMI Device Information (§7.39): its presence means the board has an IPMI BMC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MEMORY_DEVICE = 17
IPMI_DEVICE = 38

# Strings firmware puts where it has nothing to say: read as unknown, not as a value.
PLACEHOLDERS = frozenset(
    {
        "", "not specified", "unknown", "none", "n/a", "not available", "not present",
        "no dimm", "to be filled by o.e.m.", "default string", "undefined",
    }
)  # fmt: skip


class SmbiosError(ValueError):
    """A structure too short or inconsistent to decode (firmware or capture at fault)."""


@dataclass(frozen=True, slots=True)
class Structure:
    type: int
    handle: int
    formatted: bytes  # the whole formatted area, header included
    strings: tuple[str, ...]

    def byte(self, offset: int) -> int | None:
        return self.formatted[offset] if offset < len(self.formatted) else None

    def word(self, offset: int) -> int | None:
        if offset + 2 > len(self.formatted):
            return None
        return int(struct.unpack_from("<H", self.formatted, offset)[0])

    def dword(self, offset: int) -> int | None:
        if offset + 4 > len(self.formatted):
            return None
        return int(struct.unpack_from("<I", self.formatted, offset)[0])

    def string(self, offset: int) -> str | None:
        """The string a string field names, stripped; None for none, a placeholder or a
        number past the table."""
        index = self.byte(offset)
        if not index or index > len(self.strings):
            return None
        value = self.strings[index - 1].strip()
        return None if value.lower() in PLACEHOLDERS else value


def parse_structure(raw: bytes) -> Structure:
    """One structure as the kernel's raw file holds it."""
    if len(raw) < 4:
        raise SmbiosError(f"SMBIOS structure of {len(raw)} bytes: shorter than its header")
    kind, length, handle = struct.unpack_from("<BBH", raw)
    if length < 4 or length > len(raw):
        raise SmbiosError(f"SMBIOS type {kind} says length {length}, has {len(raw)} bytes")
    table = raw[length:]
    end = table.find(b"\0\0")
    # An empty table is two NULs; a missing terminator (a truncated capture) keeps what is
    # there. Firmware strings are meant to be ASCII; anything else is kept, not rejected.
    body = table if end < 0 else table[:end]
    strings = tuple(s.decode("latin-1") for s in body.split(b"\0")) if body else ()
    return Structure(kind, handle, bytes(raw[:length]), strings)


# Memory Device, byte 0x12: the memory type (DSP0134 table "Memory Device — Type").
MEMORY_TYPES = {
    0x01: "Other", 0x02: "Unknown", 0x03: "DRAM", 0x04: "EDRAM", 0x05: "VRAM", 0x06: "SRAM",
    0x07: "RAM", 0x08: "ROM", 0x09: "Flash", 0x0A: "EEPROM", 0x0B: "FEPROM", 0x0C: "EPROM",
    0x0D: "CDRAM", 0x0E: "3DRAM", 0x0F: "SDRAM", 0x10: "SGRAM", 0x11: "RDRAM", 0x12: "DDR",
    0x13: "DDR2", 0x14: "DDR2 FB-DIMM", 0x18: "DDR3", 0x19: "FBD2", 0x1A: "DDR4",
    0x1B: "LPDDR", 0x1C: "LPDDR2", 0x1D: "LPDDR3", 0x1E: "LPDDR4",
    0x1F: "Logical non-volatile device", 0x20: "HBM", 0x21: "HBM2", 0x22: "DDR5",
    0x23: "LPDDR5", 0x24: "HBM3",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class MemoryDevice:
    locator: str | None
    bank_locator: str | None
    size_mib: int | None
    type: str | None
    speed_mts: int | None
    manufacturer: str | None
    serial: str | None
    part_number: str | None


def memory_size_mib(device: Structure) -> int | None:
    """Size (offset 0x0C): 0xFFFF unknown; 0x7FFF "see Extended Size" (0x1C, bits 30:0, in
    MiB, for 32 GiB and up, SMBIOS 2.7); else bits 14:0 in MiB, or in KiB when bit 15 is set.
    An empty slot is 0."""
    size = device.word(0x0C)
    if size is None or size == 0xFFFF:
        return None
    if size == 0x7FFF:
        extended = device.dword(0x1C)
        return None if extended is None else extended & 0x7FFFFFFF
    if size & 0x8000:
        return (size & 0x7FFF) // 1024
    return size


def memory_speed_mts(device: Structure) -> int | None:
    """The module's rated speed in MT/s (offset 0x15, SMBIOS 2.3): 0 unknown; 0xFFFF "see
    Extended Speed" (0x54, bits 30:0, SMBIOS 3.3), for speeds of 65,535 MT/s and up."""
    speed = device.word(0x15)
    if speed == 0xFFFF:
        speed = device.dword(0x54)
        speed = None if speed is None else speed & 0x7FFFFFFF
    return speed or None


def decode_memory_device(device: Structure) -> MemoryDevice | None:
    """A populated slot's module; None for an empty slot (size 0)."""
    if device.type != MEMORY_DEVICE:
        raise SmbiosError(f"SMBIOS type {device.type} is not a memory device (17)")
    if device.word(0x0C) == 0:
        return None
    kind = device.byte(0x12)
    type_name = MEMORY_TYPES.get(kind) if kind is not None else None
    return MemoryDevice(
        locator=device.string(0x10),
        bank_locator=device.string(0x11),
        size_mib=memory_size_mib(device),
        type=None if type_name in (None, "Unknown") else type_name,
        speed_mts=memory_speed_mts(device),
        manufacturer=device.string(0x17),
        serial=device.string(0x18),
        part_number=device.string(0x1A),
    )


# IPMI Device Information, byte 0x04: how the host reaches the BMC.
IPMI_INTERFACES = {0: None, 1: "kcs", 2: "smic", 3: "bt", 4: "ssif"}


@dataclass(frozen=True, slots=True)
class IpmiDevice:
    interface: str | None  # kcs | smic | bt | ssif
    version: str | None  # the IPMI specification revision, e.g. "2.0"


def decode_ipmi_device(device: Structure) -> IpmiDevice:
    if device.type != IPMI_DEVICE:
        raise SmbiosError(f"SMBIOS type {device.type} is not an IPMI device (38)")
    interface = device.byte(0x04)
    revision = device.byte(0x05)  # BCD: 0x20 is 2.0
    return IpmiDevice(
        IPMI_INTERFACES.get(interface) if interface is not None else None,
        None if revision is None else f"{revision >> 4}.{revision & 0x0F}",
    )
