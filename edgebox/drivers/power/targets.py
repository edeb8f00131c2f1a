"""The power-target check at call time: resolve a BMC's host name and judge every address.

`domain.power_targets` decides which addresses are refused; this module resolves names with
the event loop's resolver (never blocking it) and raises `TargetRefused` with the sentence that
says why and how to allow it. The HTTP drivers also plug `TargetGuard.check_addresses` into
aiohttp's resolver (`http_transport`), so the addresses judged are the ones connected to: a
name that resolves to an allowed address at one moment and to 127.0.0.1 the next cannot slip
through between a check and the connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence

from edgebox.domain.power_targets import TargetPolicy, is_ip_literal

Resolve = Callable[[str, int], Awaitable[list[str]]]


class TargetRefused(Exception):
    """The BMC's address (or what its name resolves to) may not be a power target."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        shown = f"{host} resolves to an address that is refused: {reason}"
        super().__init__(reason if is_ip_literal(host) else shown)


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (OSError when it does not)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class TargetGuard:
    """Checks power targets against a policy, resolving names with `resolve`."""

    def __init__(self, policy: TargetPolicy, resolve: Resolve = resolve_host) -> None:
        self.policy = policy
        self._resolve = resolve

    def check_addresses(self, host: str, addresses: Sequence[str]) -> None:
        """Raise TargetRefused when any address `host` stands for is refused: a name that
        resolves to a good and a refused address is not a BMC to trust with credentials."""
        for address in addresses:
            reason = self.policy.refusal(address.split("%", 1)[0])  # fe80::1%eth0
            if reason is not None:
                raise TargetRefused(host, reason)

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, all of them allowed. OSError when the name
        does not resolve, TargetRefused when an address is refused."""
        found = [host] if is_ip_literal(host) else await self._resolve(host, port)
        if not found:
            raise OSError(f"{host} resolves to no address")
        self.check_addresses(host, found)
        return found

    async def address(self, host: str, port: int) -> str:
        """The first of `addresses`: the one to connect to (IPMI's worker takes one)."""
        return (await self.addresses(host, port))[0]
