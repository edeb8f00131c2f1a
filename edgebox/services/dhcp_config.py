"""From settings (file and API) and the live links to the DHCP core's `ServerConfig`.

A subnet is on a link when its `interface` names it, or when it contains the link's own
address; otherwise it is reached through relays. Its server identifier is our address on its
link, or, for a relayed subnet, the address of the first link that is up (relays forward to
it). Boot files are served by TFTP from that address and by HTTP from the machine-facing port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Protocol

from edgebox.domain.settings import DhcpSettings, SubnetSettings
from edgebox.wire.dhcp.server_config import (
    AddressRange,
    BootFiles,
    LinkConfig,
    ServerConfig,
    StaticRoute,
    SubnetConfig,
)


class LinkAddress(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...


def _int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def build_server_config(
    dhcp: DhcpSettings,
    subnets: Sequence[SubnetSettings],
    links: Mapping[str, LinkAddress],
    http_port: int,
) -> ServerConfig:
    modes = {i.name: i.mode for i in dhcp.interfaces}
    up = [links[i.name] for i in dhcp.interfaces if i.name in links]
    on_link: dict[str, list[str]] = {link.name: [] for link in up}
    configs = []
    for subnet in subnets:
        network = ipaddress.IPv4Network(subnet.cidr)
        link = _link_of(subnet, network, up)
        if link is None and not up:
            continue  # nothing to answer from yet
        server = (link or up[0]).address
        if link is not None:
            on_link[link.name].append(subnet.cidr)
        configs.append(_subnet_config(subnet, network, server, http_port))
    return ServerConfig(
        links=tuple(
            LinkConfig(link.name, modes[link.name], _int(link.address), tuple(on_link[link.name]))
            for link in up
        ),
        subnets=tuple(configs),
    )


def _link_of(
    subnet: SubnetSettings, network: ipaddress.IPv4Network, up: Sequence[LinkAddress]
) -> LinkAddress | None:
    for link in up:
        if subnet.interface == link.name:
            return link
    if subnet.interface:
        return None  # its link is not up (yet)
    for link in up:
        if ipaddress.IPv4Address(link.address) in network:
            return link
    return None


def _subnet_config(
    subnet: SubnetSettings, network: ipaddress.IPv4Network, server: str, http_port: int
) -> SubnetConfig:
    http_base = f"http://{server}:{http_port}"
    boot = BootFiles(
        tftp_server=_int(server),
        http_base=http_base,
        script_url=f"{http_base}/boot/ipxe?mac={{mac}}",
        bios=subnet.boot.bios,
        uefi_x64=subnet.boot.uefi_x64,
        uefi_http=subnet.boot.uefi_http,
        arm64=subnet.boot.arm64,
        arm64_http=subnet.boot.arm64,
    )
    routes = []
    for route in subnet.routes:
        dest = ipaddress.IPv4Network(route.destination)
        routes.append(StaticRoute(int(dest.network_address), dest.prefixlen, _int(route.gateway)))
    return SubnetConfig(
        id=subnet.cidr,
        network=int(network.network_address),
        prefix=network.prefixlen,
        ranges=tuple(AddressRange(_int(r.start), _int(r.end)) for r in subnet.ranges),
        router=_int(subnet.router) if subnet.router else None,
        dns=tuple(_int(a) for a in subnet.dns),
        ntp=tuple(_int(a) for a in subnet.ntp),
        domain_name=subnet.domain,
        domain_search=subnet.domain_search,
        mtu=subnet.mtu or None,
        lease_time=subnet.lease_time,
        routes=tuple(routes),
        boot=boot,
        server_address=_int(server),
    )
