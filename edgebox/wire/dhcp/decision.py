"""What goes into the server core (`ReceivedOn`) and what comes out (`Decision`).

`Decision` is a `NamedTuple` rather than the usual frozen dataclass: it is made for every
packet, and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs
about 1 µs more, a few per cent of a whole decision. It is just as immutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from edgebox.wire.dhcp.boot import BootChoice
from edgebox.wire.dhcp.codec import parse_message
from edgebox.wire.dhcp.destination import CLIENT_PORT, SERVER_PORT, Destination
from edgebox.wire.dhcp.leases import LeaseChange
from edgebox.wire.dhcp.message import DhcpMessage


@dataclass(frozen=True, slots=True)
class ReceivedOn:
    """Where a request came from: the served link, our port (67 or 4011) and the sender."""

    link_name: str
    port: int = SERVER_PORT
    source_ip: int = 0
    source_port: int = CLIENT_PORT


class Decision(NamedTuple):
    """What to do about one request. ``packet is None``: send nothing (``reason`` says why).

    The adapter, in this order: `LeaseTable.apply` the ``change`` at once (before any
    ``await``); if ``probe_ip`` is set, ARP-probe it and, if it is answered, call
    ``leases.mark_in_use(probe_ip, now)`` and handle the same request again; if the
    change is ``durable``, commit it and, should that fail, `LeaseTable.restore` the
    snapshot taken before ``apply`` and send nothing; then send ``packet`` (the encoded
    reply) to ``destination``. ``boot`` feeds the boot timeline.
    """

    reason: str
    packet: bytes | None = None
    destination: Destination | None = None
    change: LeaseChange | None = None
    boot: BootChoice | None = None
    probe_ip: int | None = None
    subnet_id: str | None = None

    @property
    def reply(self) -> DhcpMessage | None:
        """The reply as a message, decoded from ``packet`` (for tests and logs: the packet
        path never needs it, so it is not built there)."""
        return None if self.packet is None else parse_message(self.packet)
