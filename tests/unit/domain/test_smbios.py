"""SMBIOS memory device (17) and IPMI device (38) decoding, on structures built by the spec."""

from __future__ import annotations

import struct

import pytest

from edgebox.domain.smbios import (
    MemoryDevice,
    SmbiosError,
    decode_ipmi_device,
    decode_memory_device,
    parse_structure,
)


def memory_device(
    *,
    size: int,
    extended_size: int = 0,
    kind: int = 0x1A,
    speed: int = 2933,
    extended_speed: int | None = None,
    strings: tuple[str, ...] = ("P1-DIMMA1", "P0_Node0_Channel0_Dimm0", "Samsung",
                                 "03A1B2C3", "01193612", "M393A4K40CB2-CVF    "),
) -> bytes:  # fmt: skip
    """A type 17 structure laid out as DSP0134 §7.18 says: SMBIOS 3.2 (length 0x54), or 3.3
    (0x5C) when an extended speed is given. Strings: locator, bank, manufacturer, serial,
    asset tag, part number; an empty one is index 0 (the spec allows no empty string: two
    NULs in a row end the table)."""
    length = 0x5C if extended_speed is not None else 0x54
    area = bytearray(length)
    struct.pack_into("<BBH", area, 0, 17, length, 0x1100)
    struct.pack_into("<HHHHH", area, 0x04, 0x1000, 0xFFFE, 72, 64, size)  # ECC: 72 of 64
    area[0x0E] = 0x09  # form factor: DIMM
    table, index = b"", []
    for value in strings:
        table += value.encode() + b"\0" if value else b""
        index.append(table.count(b"\0") if value else 0)
    area[0x10], area[0x11] = index[0], index[1]  # device locator, bank locator
    area[0x12] = kind
    struct.pack_into("<H", area, 0x13, 0x2080)  # type detail: synchronous, registered
    struct.pack_into("<H", area, 0x15, speed)
    area[0x17], area[0x18], area[0x19], area[0x1A] = index[2:6]
    area[0x1B] = 0x02  # attributes: rank 2
    struct.pack_into("<IH", area, 0x1C, extended_size, 2666)  # configured speed below rated
    struct.pack_into("<HHH", area, 0x22, 1200, 1200, 1200)  # millivolts
    area[0x28] = 0x03  # memory technology: DRAM
    if extended_speed is not None:
        struct.pack_into("<II", area, 0x54, extended_speed, extended_speed)
    return bytes(area) + (table or b"\0") + b"\0"


def test_a_ddr4_rdimm_of_32_gib_uses_the_extended_size() -> None:
    raw = memory_device(size=0x7FFF, extended_size=32768)
    assert decode_memory_device(parse_structure(raw)) == MemoryDevice(
        locator="P1-DIMMA1",
        bank_locator="P0_Node0_Channel0_Dimm0",
        size_mib=32768,
        type="DDR4",
        speed_mts=2933,
        manufacturer="Samsung",
        serial="03A1B2C3",
        part_number="M393A4K40CB2-CVF",
    )


def test_size_in_kib_and_unknown_size() -> None:
    kib = decode_memory_device(parse_structure(memory_device(size=0x8000 | 8192)))
    assert kib is not None and kib.size_mib == 8  # bit 15: the value counts KiB
    unknown = decode_memory_device(parse_structure(memory_device(size=0xFFFF)))
    assert unknown is not None and unknown.size_mib is None


def test_an_empty_slot_is_no_module() -> None:
    strings = ("DIMM B2", "NO DIMM", "NO DIMM", "NO DIMM", "NO DIMM", "NO DIMM")
    raw = memory_device(size=0, kind=0x02, speed=0, strings=strings)
    assert decode_memory_device(parse_structure(raw)) is None


def test_ddr5_with_an_extended_speed_and_placeholder_strings() -> None:
    strings = ("DIMM_A1", "BANK 0", "Not Specified", "Unknown", "", "To Be Filled By O.E.M.")
    raw = memory_device(size=16384, kind=0x22, speed=0xFFFF, extended_speed=70400,
                        strings=strings)  # fmt: skip
    module = decode_memory_device(parse_structure(raw))
    assert module is not None
    assert (module.type, module.speed_mts, module.size_mib) == ("DDR5", 70400, 16384)
    assert (module.manufacturer, module.serial, module.part_number) == (None, None, None)


def test_an_smbios_2_3_structure_has_no_extended_fields() -> None:
    """Length 0x1B (SMBIOS 2.3): fields past it are unknown, not read from the strings."""
    full = memory_device(size=0x7FFF, extended_size=65536)
    area = bytearray(full[:0x1B])
    area[1] = 0x1B
    module = decode_memory_device(parse_structure(bytes(area) + b"A1\0\0"))
    assert module is not None
    assert module.size_mib is None  # "see extended size", which a 2.3 structure lacks
    assert module.locator == "A1" and module.manufacturer is None  # string 3 does not exist


def test_ipmi_device() -> None:
    # Interface KCS, IPMI 2.0, I2C address 0x20, base address 0xCA2 (I/O space).
    raw = bytes.fromhex("26 12 00 30 01 20 20 ff a3 0c 00 00 00 00 00 00 00 00 00 00")
    ipmi = decode_ipmi_device(parse_structure(raw))
    assert (ipmi.interface, ipmi.version) == ("kcs", "2.0")


def test_malformed_structures_are_refused() -> None:
    with pytest.raises(SmbiosError, match="shorter than its header"):
        parse_structure(b"\x11\x28")
    with pytest.raises(SmbiosError, match="length 40, has 10 bytes"):
        parse_structure(b"\x11\x28" + bytes(8))
    with pytest.raises(SmbiosError, match="not a memory device"):
        decode_memory_device(parse_structure(bytes.fromhex("26 04 00 00 00 00")))
