"""Parsing and checking the names people type: MAC addresses, host names, pool and tag names."""

from __future__ import annotations

import re
import secrets

_HEX12 = re.compile(r"[0-9a-f]{12}")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_SYSTEM_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (l/1, o/0, i)


def parse_mac(text: str) -> str:
    """Accept aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff; return the colon form."""
    digits = re.sub(r"[:.\-]", "", text.strip().lower())
    if not _HEX12.fullmatch(digits):
        raise ValueError(
            f"{text!r} is not a MAC address (expected six hex pairs, aa:bb:cc:dd:ee:ff)"
        )
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_hostname(text: str) -> str:
    """A host name is one RFC 1123 label: letters, digits and inner hyphens, up to 63 long."""
    name = text.strip().lower()
    if not _HOST_LABEL.match(name):
        raise ValueError(
            f"{text!r} is not a valid host name (letters, digits and hyphens, 1-63 characters, "
            "not starting or ending with a hyphen)"
        )
    return name


def check_name(text: str, what: str) -> str:
    """Pool, zone, tag and user names: lowercase letters, digits, '.', '_' and '-'."""
    if not _NAME.match(text):
        raise ValueError(
            f"{text!r} is not a valid {what} name (lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 63 characters)"
        )
    return text


def new_system_id() -> str:
    """A short random id, stable for the machine's life, in the style of MAAS's system ids."""
    return "".join(secrets.choice(_SYSTEM_ID_ALPHABET) for _ in range(6))


def hostname_for(system_id: str) -> str:
    return f"node-{system_id}"
