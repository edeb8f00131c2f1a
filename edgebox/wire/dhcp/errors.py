"""The one error the DHCP codec raises for bytes it cannot accept."""


class DhcpParseError(ValueError):
    """A DHCP packet, or one option value in it, is malformed.

    Raised by `parse_message` and by the typed option accessors, and by nothing else in
    the decoding path: a server catches exactly this, logs it with the peer and drops the
    packet (the peer's fault, never worth a retry). The message says what was wrong and
    where, e.g. ``option 93 at offset 262: length 3 runs past end of packet (len 265)``.
    """
