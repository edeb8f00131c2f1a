"""`DhcpMessage`: one BOOTP/DHCP packet as plain values (RFC 2131 section 2, figure 1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from edgebox.wire.dhcp.options import MESSAGE_TYPE, OPTION_FIELDS, MessageType, OptionField
from edgebox.wire.dhcp.values import format_ipv4

T = TypeVar("T")

BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
FLAG_BROADCAST = 0x8000  # RFC 2131 4.1: the client cannot take unicast before it has an IP

_OP_NAMES = {BOOTREQUEST: "BOOTREQUEST", BOOTREPLY: "BOOTREPLY"}
# Option 53's bytes -> its value: read on every packet, and a dict lookup costs a tenth of
# `MESSAGE_TYPE.decode` (a length check and an enum call).
_MESSAGE_TYPES = {bytes((kind,)): kind for kind in MessageType}


@dataclass(slots=True, kw_only=True)
class DhcpMessage:
    """A BOOTP/DHCP message. Treat it as immutable: build a new one with `dataclasses.replace`.

    Not ``frozen=True`` on purpose: a frozen dataclass's ``__init__`` costs ~1.4 µs more
    (one ``object.__setattr__`` per field), a quarter of the parse budget on the hot path.

    Addresses (``ciaddr`` .. ``giaddr``) are ints in host order (`format_ipv4` prints them).
    ``chaddr`` is trimmed to ``hlen`` bytes. ``sname`` and ``file`` are cut at their first
    NUL, and are empty when option overload (52) put options in them. ``options`` maps each
    option code to its raw value in the order first seen, long options (RFC 3396) already
    joined; option 52 itself is never in it. Use `get` with an `OptionField` for typed values.
    """

    op: int
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    xid: int
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    chaddr: bytes
    sname: bytes = b""
    file: bytes = b""
    options: Mapping[int, bytes] = field(default_factory=dict)

    @property
    def mac(self) -> str:
        """``chaddr`` as ``aa:bb:cc:dd:ee:ff``."""
        return self.chaddr.hex(":")

    @property
    def broadcast(self) -> bool:
        """The client asked for a broadcast reply (RFC 2131 section 4.1)."""
        return bool(self.flags & FLAG_BROADCAST)

    @property
    def message_type(self) -> MessageType | None:
        """Option 53, or None for a plain BOOTP packet; `DhcpParseError` if malformed."""
        raw = self.options.get(MESSAGE_TYPE.code)
        if raw is None:
            return None
        kind = _MESSAGE_TYPES.get(raw)
        return kind if kind is not None else MESSAGE_TYPE.decode(raw)  # raises: malformed

    def get(self, option: OptionField[T]) -> T | None:
        """The typed value of ``option``, None if absent; `DhcpParseError` if malformed."""
        raw = self.options.get(option.code)
        return None if raw is None else option.decode(raw)

    def describe(self) -> str:
        """A stable text dump, one line per field then one per option in packet order.

        Golden tests compare it, so change it only with the fixtures' ``.txt`` files.
        """
        lines = [
            f"op: {_OP_NAMES.get(self.op, 'unknown')} ({self.op})",
            f"htype: {self.htype}",
            f"hlen: {self.hlen}",
            f"hops: {self.hops}",
            f"xid: {self.xid:#010x}",
            f"secs: {self.secs}",
            f"flags: {self.flags:#06x}{' (broadcast)' if self.broadcast else ''}",
            f"ciaddr: {format_ipv4(self.ciaddr)}",
            f"yiaddr: {format_ipv4(self.yiaddr)}",
            f"siaddr: {format_ipv4(self.siaddr)}",
            f"giaddr: {format_ipv4(self.giaddr)}",
            f"chaddr: {self.mac}",
            f"sname: {self.sname!r}",
            f"file: {self.file!r}",
        ]
        for code, raw in self.options.items():
            known = OPTION_FIELDS.get(code)
            if known is None:
                lines.append(f"option {code}: {raw.hex()}")
            else:
                lines.append(f"option {code} ({known.name}): {known.describe(raw)}")
        return "\n".join(lines) + "\n"
