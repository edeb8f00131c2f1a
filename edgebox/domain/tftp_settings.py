"""The `tftp:` section of the configuration: where TFTP listens, what it serves, its limits.

TFTP is off until an interface is named: like DHCP, it never answers on a link the configuration
does not list. The dataclasses follow the conventions of `edgebox.domain.settings` (frozen,
defaults, `min`/`max` metadata read by its generic walker); `check_tftp_settings` adds the
checks the walker cannot make.

    tftp:
      interfaces: [{name: eth1}, {name: veth-srv, netns: lab-srv}]
      roots: [/var/lib/edgebox/firmware-images]
      max_transfers: 128
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TftpInterfaceSettings", "TftpSettings", "check_tftp_settings"]


def _required() -> Any:
    return field(default="", metadata={"required": True})


@dataclass(frozen=True, slots=True)
class TftpInterfaceSettings:
    # The interface to serve; the request socket and every transfer socket are bound to it.
    name: str = _required()
    # The network namespace that holds it (labs and tests); empty: the host's namespace.
    netns: str = ""


@dataclass(frozen=True, slots=True)
class TftpSettings:
    interfaces: tuple[TftpInterfaceSettings, ...] = ()
    # Directories searched in order for a requested file; a name that resolves (symlinks
    # included) outside all of them is refused. Empty: edgebox's own firmware-images folders.
    roots: tuple[str, ...] = ()
    # Concurrent transfers; beyond this a request is answered "server busy, retry".
    max_transfers: int = field(default=128, metadata={"min": 1, "max": 4096})
    # The largest block a client may negotiate (RFC 2348). 1468 fills one Ethernet frame.
    max_blksize: int = field(default=1468, metadata={"min": 512, "max": 65464})
    # The largest window a client may negotiate (RFC 7440); 1 turns windows off.
    max_windowsize: int = field(default=16, metadata={"min": 1, "max": 64})
    # Seconds between retransmissions when the client does not ask for its own timeout.
    timeout: float = field(default=1.0, metadata={"min": 0.1, "max": 10.0})
    # Resends of an unacknowledged window before the client is presumed gone.
    retries: int = field(default=5, metadata={"min": 0, "max": 20})


def check_tftp_settings(tftp: TftpSettings, source: str) -> None:
    """What the walker cannot check: no interface twice, every root an absolute path."""
    # Imported here: settings.py imports this module to build `Settings`.
    from edgebox.domain.settings import ConfigError  # noqa: PLC0415

    seen: set[tuple[str, str]] = set()
    for i, interface in enumerate(tftp.interfaces):
        key = (interface.netns, interface.name)
        if key in seen:
            where = f" in namespace {interface.netns!r}" if interface.netns else ""
            raise ConfigError(
                f"{source}: tftp.interfaces[{i}].name: {interface.name!r}{where} is listed twice"
            )
        seen.add(key)
    for i, root in enumerate(tftp.roots):
        if not root.startswith("/"):
            raise ConfigError(
                f"{source}: tftp.roots[{i}]: expected an absolute path, got {root!r} "
                "(a relative root would depend on the directory edgebox was started from)"
            )
