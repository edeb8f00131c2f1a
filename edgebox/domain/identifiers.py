"""Parsing and checking the names people type: MAC addresses, host names, pool and tag names."""

from __future__ import annotations

import re
import secrets

_HEX12 = re.compile(r"[0-9a-f]{12}")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# The same rules as JSON Schema patterns for the API's document (ECMA regex; `$` there is the
# very end, as `fullmatch` is here).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
HOSTNAME_PATTERN = r"^\s*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\s*$"
MAC_PATTERN = r"^\s*[:.-]*([0-9A-Fa-f][:.-]*){12}\s*$"
MAC_MAX_LENGTH = 64
_NAME = re.compile(NAME_PATTERN[1:-1])
_SYSTEM_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (l/1, o/0, i)


def parse_mac(text: str) -> str:
    """Accept aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff; return the colon form."""
    digits = re.sub(r"[:.\-]", "", text.strip().lower()) if len(text) <= MAC_MAX_LENGTH else ""
    if not _HEX12.fullmatch(digits):
        raise ValueError(
            f"{_quoted(text)} is not a MAC address (expected six hex pairs, aa:bb:cc:dd:ee:ff)"
        )
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_hostname(text: str) -> str:
    """A host name is one RFC 1123 label: letters, digits and inner hyphens, up to 63 long."""
    stripped = text.strip()
    name = stripped.lower()
    if not stripped.isascii() or not _HOST_LABEL.fullmatch(name):
        raise ValueError(
            f"{_quoted(text)} is not a valid host name (letters, digits and hyphens, "
            "1-63 characters, not starting or ending with a hyphen)"
        )
    return name


def check_name(text: str, what: str) -> str:
    """Pool, zone, tag and user names: lowercase letters, digits, '.', '_' and '-'."""
    if not _NAME.fullmatch(text):
        raise ValueError(
            f"{_quoted(text)} is not a valid {what} name (lowercase letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, at most 63 characters)"
        )
    return text


def new_system_id() -> str:
    """A short random id, stable for the machine's life, in the style of MAAS's system ids."""
    return "".join(secrets.choice(_SYSTEM_ID_ALPHABET) for _ in range(6))


def hostname_for(system_id: str) -> str:
    return f"node-{system_id}"


def _quoted(text: str) -> str:
    """`text` for a message: quoted, and cut when it is longer than any valid value."""
    return repr(text) if len(text) <= 80 else f"{text[:40]!r}... ({len(text)} characters)"
