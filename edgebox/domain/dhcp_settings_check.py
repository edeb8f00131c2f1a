"""Checks of the `dhcp:` settings that need address arithmetic: every address parses, ranges
sit inside their subnet and do not overlap, subnets do not overlap, and a subnet's interface
is one that the configuration serves."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from edgebox.domain.settings import ConfigError, DhcpSettings, RangeSettings


def check_dhcp_settings(dhcp: DhcpSettings, source: str) -> None:
    names = [i.name for i in dhcp.interfaces]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(f"{source}: dhcp.interfaces[{i}].name: {name!r} is listed twice")
    networks: list[tuple[str, ipaddress.IPv4Network]] = []
    for i, subnet in enumerate(dhcp.subnets):
        key = f"{source}: dhcp.subnets[{i}]"
        network = _network(subnet.cidr, f"{key}.cidr")
        for other_key, other in networks:
            if network.overlaps(other):
                raise ConfigError(f"{key}.cidr: {network} overlaps {other} ({other_key})")
        networks.append((f"dhcp.subnets[{i}]", network))
        if subnet.interface and subnet.interface not in names:
            served = ", ".join(names) or "none"
            raise ConfigError(
                f"{key}.interface: {subnet.interface!r} is not in dhcp.interfaces "
                f"(served: {served})"
            )
        _check_ranges(subnet.ranges, network, key)
        if subnet.router:
            _address(subnet.router, f"{key}.router", network)
        for field, values in (("dns", subnet.dns), ("ntp", subnet.ntp)):
            for j, value in enumerate(values):
                _address(value, f"{key}.{field}[{j}]", None)
        for j, route in enumerate(subnet.routes):
            _network(route.destination, f"{key}.routes[{j}].destination")
            _address(route.gateway, f"{key}.routes[{j}].gateway", network)


def _check_ranges(
    ranges: Iterable[RangeSettings], network: ipaddress.IPv4Network, key: str
) -> None:
    spans: list[tuple[int, int, int]] = []
    for j, rng in enumerate(ranges):
        start = _address(rng.start, f"{key}.ranges[{j}].start", network)
        end = _address(rng.end, f"{key}.ranges[{j}].end", network)
        if int(end) < int(start):
            raise ConfigError(f"{key}.ranges[{j}]: end {end} is before start {start}")
        for k, (low, high, _) in enumerate(spans):
            if int(start) <= high and low <= int(end):
                raise ConfigError(f"{key}.ranges[{j}]: overlaps {key.split(': ')[1]}.ranges[{k}]")
        spans.append((int(start), int(end), j))


def _network(text: str, key: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{key}: expected an IPv4 network such as 10.0.0.0/24: {exc}") from None


def _address(text: str, key: str, network: ipaddress.IPv4Network | None) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise ConfigError(f"{key}: expected an IPv4 address, got {text!r}") from None
    if network is not None and address not in network:
        raise ConfigError(f"{key}: {address} is outside the subnet {network}")
    return address
