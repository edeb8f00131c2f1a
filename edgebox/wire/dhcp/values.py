"""Option payload codecs: the bytes of one option value <-> a Python value.

Each kind of payload has a ``decode_*`` (bytes -> value), an ``encode_*`` (value -> bytes)
and a ``format_*`` (value -> one line of text for `DhcpMessage.describe`). Decoders raise a
plain `ValueError` with a short detail such as "length 3 is not a multiple of 2";
`OptionField` (options.py) turns that into a `DhcpParseError` that names the option.
Encoders raise `ValueError` for values that cannot be put on the wire.

IPv4 addresses are ``int`` in host order everywhere: struct yields them for free, and they
compare, hash and mask cheaply. `format_ipv4` and `parse_ipv4` convert for people.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


# -- IPv4 addresses ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def format_ipv4(addr: int) -> str:
    """``0x0a000001`` -> ``"10.0.0.1"``. Cached: every reply and log line of a busy server
    formats the same few thousand addresses over and over."""
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def parse_ipv4(text: str) -> int:
    """``"10.0.0.1"`` -> ``0x0a000001``; `ValueError` for anything but a dotted quad."""
    return int(ipaddress.IPv4Address(text))


def decode_ipv4(raw: bytes) -> int:
    if len(raw) != 4:
        raise ValueError(f"length {len(raw)} is not 4")
    value: int = _U32.unpack(raw)[0]
    return value


def encode_ipv4(addr: int) -> bytes:
    return _U32.pack(addr)


def decode_ipv4_list(raw: bytes) -> tuple[int, ...]:
    if not raw or len(raw) % 4:
        raise ValueError(f"length {len(raw)} is not a positive multiple of 4")
    return struct.unpack(f"!{len(raw) // 4}I", raw)


def encode_ipv4_list(addrs: Iterable[int]) -> bytes:
    items = tuple(addrs)
    if not items:
        raise ValueError("an address list needs at least one address")
    return struct.pack(f"!{len(items)}I", *items)


def format_ipv4_list(addrs: tuple[int, ...]) -> str:
    return ", ".join(map(format_ipv4, addrs))


# -- integers -----------------------------------------------------------------------------------


def decode_u8(raw: bytes) -> int:
    if len(raw) != 1:
        raise ValueError(f"length {len(raw)} is not 1")
    return raw[0]


def encode_u8(value: int) -> bytes:
    return bytes((value,))


def decode_u16(raw: bytes) -> int:
    if len(raw) != 2:
        raise ValueError(f"length {len(raw)} is not 2")
    value: int = _U16.unpack(raw)[0]
    return value


def encode_u16(value: int) -> bytes:
    return _U16.pack(value)


def decode_u32(raw: bytes) -> int:
    if len(raw) != 4:
        raise ValueError(f"length {len(raw)} is not 4")
    value: int = _U32.unpack(raw)[0]
    return value


def encode_u32(value: int) -> bytes:
    return _U32.pack(value)


def decode_u8_list(raw: bytes) -> tuple[int, ...]:
    if not raw:
        raise ValueError("length 0, at least 1 byte is required")
    return tuple(raw)


def encode_u8_list(values: Iterable[int]) -> bytes:
    data = bytes(values)
    if not data:
        raise ValueError("the list needs at least one entry")
    return data


def decode_u16_list(raw: bytes) -> tuple[int, ...]:
    if not raw or len(raw) % 2:
        raise ValueError(f"length {len(raw)} is not a multiple of 2")
    return struct.unpack(f"!{len(raw) // 2}H", raw)


def encode_u16_list(values: Iterable[int]) -> bytes:
    items = tuple(values)
    if not items:
        raise ValueError("the list needs at least one entry")
    return struct.pack(f"!{len(items)}H", *items)


def format_int_list(values: tuple[int, ...]) -> str:
    return ", ".join(map(str, values))


# -- text ---------------------------------------------------------------------------------------


def decode_text(raw: bytes) -> str:
    """NVT ASCII per RFC 2132, read as UTF-8 (a superset that real clients do send).

    Quirk: some firmware and Windows clients NUL-terminate string options although RFC 2132
    section 2 says not to; trailing NULs are dropped.
    """
    if not raw:
        raise ValueError("length 0, at least 1 byte is required")
    return raw.rstrip(b"\0").decode("utf-8")


def encode_text(text: str) -> bytes:
    data = text.encode("utf-8")
    if not data:
        raise ValueError("the text is empty")
    if b"\0" in data:
        raise ValueError("the text contains a NUL byte")
    return data


# -- encapsulated sub-options (43, 82, 175) ----------------------------------------------------


def decode_suboptions(raw: bytes, *, pad_end: bool = True) -> dict[int, bytes]:
    """Sub-option TLVs (code, length, value) in order; repeats are joined, as RFC 3396 does.

    With ``pad_end`` (PXE option 43, iPXE option 175), sub-code 0 is a one-byte pad and 255
    ends the list, as in the top-level options. Without it (relay agent info, RFC 3046),
    every code is an ordinary TLV.
    """
    subs: dict[int, bytes] = {}
    pos, end = 0, len(raw)
    while pos < end:
        code = raw[pos]
        if pad_end:
            if code == 0:
                pos += 1
                continue
            if code == 255:
                break
        if pos + 1 >= end:
            raise ValueError(f"sub-option {code} at offset {pos} has no length byte")
        stop = pos + 2 + raw[pos + 1]
        if stop > end:
            raise ValueError(
                f"sub-option {code} at offset {pos}: length {raw[pos + 1]} runs past the end "
                f"(len {end})"
            )
        value = raw[pos + 2 : stop]
        subs[code] = subs[code] + value if code in subs else value
        pos = stop
    return subs


def encode_suboptions(
    subs: Mapping[int, bytes], *, pad_end: bool = True, terminate: bool = False
) -> bytes:
    """TLVs in mapping order, then an End (255) if ``terminate``.

    With ``pad_end`` the codes 0 and 255 are reserved and refused, as `decode_suboptions`
    would read them as Pad and End.
    """
    parts: list[bytes] = []
    for code, value in subs.items():
        if not 0 <= code <= 255 or (pad_end and code in (0, 255)):
            raise ValueError(f"sub-option code {code} cannot be encoded")
        if len(value) > 255:
            raise ValueError(f"sub-option {code} is {len(value)} bytes, at most 255 fit")
        parts.append(bytes((code, len(value))))
        parts.append(value)
    if terminate:
        parts.append(b"\xff")
    return b"".join(parts)


def encode_pxe_vendor_options(subs: Mapping[int, bytes]) -> bytes:
    """Option 43 for PXE clients: the PXE 2.1 spec ends the sub-option list with End."""
    return encode_suboptions(subs, terminate=True)


def encode_relay_suboptions(subs: Mapping[int, bytes]) -> bytes:
    return encode_suboptions(subs, pad_end=False)


def decode_relay_suboptions(raw: bytes) -> dict[int, bytes]:
    return decode_suboptions(raw, pad_end=False)


def format_suboptions(subs: Mapping[int, bytes]) -> str:
    return " ".join(f"{code}={value.hex()}" for code, value in subs.items()) or "(none)"


# -- user class (77) ----------------------------------------------------------------------------


def decode_user_class(raw: bytes) -> tuple[bytes, ...]:
    """RFC 3004: a list of instances, each a length byte and that many (>= 1) bytes.

    Quirk: iPXE sends the bare string ``iPXE`` (and gPXE ``gPXE``; Windows and others
    send bare strings too) in the pre-RFC 3004 form. Data that does not parse exactly as
    RFC 3004 instances is taken to be one instance holding the whole value.
    """
    instances: list[bytes] = []
    pos, end = 0, len(raw)
    while pos < end:
        size = raw[pos]
        stop = pos + 1 + size
        if size == 0 or stop > end:
            return (raw,)
        instances.append(raw[pos + 1 : stop])
        pos = stop
    return tuple(instances)


def encode_user_class(instances: Iterable[bytes]) -> bytes:
    parts: list[bytes] = []
    for instance in instances:
        if not 1 <= len(instance) <= 255:
            raise ValueError(f"a user class instance is {len(instance)} bytes, not 1..255")
        parts.append(bytes((len(instance),)))
        parts.append(instance)
    if not parts:
        raise ValueError("a user class needs at least one instance")
    return b"".join(parts)


def format_user_class(instances: tuple[bytes, ...]) -> str:
    return ", ".join(map(repr, instances))


# -- identifiers (61, 94, 97) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientId:
    """Option 61: a type (an ARP hardware type, 0 for opaque, 255 for RFC 4361) and data."""

    id_type: int
    data: bytes


def decode_client_id(raw: bytes) -> ClientId:
    if len(raw) < 2:
        raise ValueError(f"length {len(raw)} is below the minimum of 2")
    return ClientId(raw[0], raw[1:])


def encode_client_id(client_id: ClientId) -> bytes:
    return bytes((client_id.id_type,)) + client_id.data


def format_client_id(client_id: ClientId) -> str:
    return f"type {client_id.id_type} {client_id.data.hex(':')}"


@dataclass(frozen=True, slots=True)
class ClientNdi:
    """Option 94 (RFC 4578): network interface type (1 = UNDI) and its major.minor version."""

    interface_type: int
    major: int
    minor: int


def decode_client_ndi(raw: bytes) -> ClientNdi:
    if len(raw) != 3:
        raise ValueError(f"length {len(raw)} is not 3")
    return ClientNdi(raw[0], raw[1], raw[2])


def encode_client_ndi(ndi: ClientNdi) -> bytes:
    return bytes((ndi.interface_type, ndi.major, ndi.minor))


def format_client_ndi(ndi: ClientNdi) -> str:
    kind = "UNDI" if ndi.interface_type == 1 else f"type {ndi.interface_type}"
    return f"{kind} {ndi.major}.{ndi.minor}"


@dataclass(frozen=True, slots=True)
class ClientMachineId:
    """Option 97 (RFC 4578): a type byte (0 = GUID) and a 16-byte GUID, as sent.

    Quirk: firmware copies the SMBIOS UUID bytes, whose first three fields are
    little-endian since SMBIOS 2.6, so the text dmidecode prints is `smbios_uuid`, while
    `uuid` reads all 16 bytes in network order. Match machines on `guid` bytes.
    """

    id_type: int
    guid: bytes

    @property
    def uuid(self) -> UUID:
        return UUID(bytes=self.guid)

    @property
    def smbios_uuid(self) -> UUID:
        return UUID(bytes_le=self.guid)


def decode_client_machine_id(raw: bytes) -> ClientMachineId:
    if len(raw) != 17:
        raise ValueError(f"length {len(raw)} is not 17 (a type byte and a 16-byte GUID)")
    return ClientMachineId(raw[0], raw[1:])


def encode_client_machine_id(machine_id: ClientMachineId) -> bytes:
    if len(machine_id.guid) != 16:
        raise ValueError(f"the GUID is {len(machine_id.guid)} bytes, not 16")
    return bytes((machine_id.id_type,)) + machine_id.guid


def format_client_machine_id(machine_id: ClientMachineId) -> str:
    smbios = machine_id.smbios_uuid
    return f"type {machine_id.id_type} guid {machine_id.uuid} (SMBIOS order {smbios})"
