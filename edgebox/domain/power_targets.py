"""Where power drivers may connect: the addresses refused by default and the allow-list.

A BMC's address, a Redfish base URL and a webhook's URLs are typed in by operators, and the
request that goes there carries the BMC's credentials, or a response that someone reads. So a
power target must not be edgebox's own host (loopback, or the unspecified address, which Linux
connects to the local host), a link-local address, a cloud provider's metadata service (which
hands out the host's cloud credentials), or a multicast or broadcast address: by default those
are refused. `power.allow_targets` in the settings lists networks (CIDRs) that are opened anyway
(a lab's BMC simulators on 127.0.0.1, BMCs on a link-local management network); with
`power.allow_targets_only: true`, only the listed networks may be targets at all.

A metadata address is opened only by an entry for exactly that address (`169.254.169.254/32`),
so opening the link-local range for BMCs does not open the metadata service with it.

IPv4 addresses inside IPv6 ones (`::ffff:127.0.0.1`, NAT64's `64:ff9b::7f00:1`) are judged as
the IPv4 address they carry. Pure: the caller resolves host names and checks every address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_N = ipaddress.ip_network

# Cloud instance metadata services: credentials of the host they run on, for the asking.
METADATA: tuple[tuple[Network, str], ...] = (
    (_N("169.254.169.254/32"), "the cloud metadata service (AWS, GCP, Azure, OpenStack, ...)"),
    (_N("fd00:ec2::254/128"), "the AWS metadata service (IPv6)"),
    (_N("100.100.100.200/32"), "the Alibaba Cloud metadata service"),
    (_N("168.63.129.16/32"), "the Azure host's wire server"),
)

REFUSED: tuple[tuple[Network, str], ...] = (
    (_N("127.0.0.0/8"), "a loopback address (edgebox's own host)"),
    (_N("::1/128"), "a loopback address (edgebox's own host)"),
    (_N("0.0.0.0/8"), "an unspecified address (it reaches edgebox's own host)"),
    (_N("::/128"), "an unspecified address (it reaches edgebox's own host)"),
    (_N("169.254.0.0/16"), "a link-local address"),
    (_N("fe80::/10"), "a link-local address"),
    (_N("224.0.0.0/4"), "a multicast address"),
    (_N("ff00::/8"), "a multicast address"),
    (_N("255.255.255.255/32"), "the broadcast address"),
)

_NAT64 = _N("64:ff9b::/96")


class TargetError(ValueError):
    """An allow-list entry that is not a network."""


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which addresses power drivers may connect to (see the module doc)."""

    allowed: tuple[Network, ...] = ()
    only_allowed: bool = False

    def refusal(self, address: str | Address) -> str | None:
        """Why `address` may not be a power target, as a sentence that says how to allow it;
        None when it may be."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        judged = _embedded_ipv4(ip) or ip
        listed = [net for net in self.allowed if judged.version == net.version and judged in net]
        for network, what in METADATA:
            if judged in network:
                if any(net.num_addresses == 1 for net in listed):
                    return None
                return (
                    f"{ip} is {what}, which is never a power target unless"
                    f" power.allow_targets lists exactly {judged}/{network.prefixlen}"
                )
        if listed:
            return None
        if self.only_allowed:
            return (
                f"{ip} is not in power.allow_targets, and power.allow_targets_only is set;"
                " add its network to power.allow_targets in edgebox.yaml"
            )
        for network, what in REFUSED:
            if judged in network:
                return (
                    f"{ip} is {what}, which is not a power target by default; if a BMC really"
                    f" is there, add {judged}/{network.max_prefixlen} (or its network) to"
                    " power.allow_targets in edgebox.yaml"
                )
        return None


def parse_target_policy(entries: Sequence[str], *, only_allowed: bool = False) -> TargetPolicy:
    """The policy for allow-list `entries` (CIDRs or single addresses); TargetError names the
    first entry that is not one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise TargetError(
                f"expected a network such as 10.0.0.0/24 or an address such as 127.0.0.1,"
                f" got {entry!r}"
            ) from None
    return TargetPolicy(tuple(networks), only_allowed)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
