"""ServerConfig and its parts refuse contradictions when built."""

from __future__ import annotations

import pytest
from dhcp_server_lab import IP, LAN, SERVER, boot_files, lab_config, lan_subnet

from edgebox.wire.dhcp.server_config import (
    AddressRange,
    BootFiles,
    LinkConfig,
    ServerConfig,
    StaticRoute,
)


def test_the_lab_config_is_valid() -> None:
    config = lab_config()
    subnet = config.subnets[0]
    assert subnet.mask == IP("255.255.255.0") and subnet.broadcast == IP("10.0.0.255")
    assert subnet.cidr == LAN and subnet.contains(IP("10.0.0.7"))
    assert subnet.in_ranges(IP("10.0.0.100")) and not subnet.in_ranges(IP("10.0.0.99"))
    assert len(subnet.ranges[0]) == 100 and str(subnet.ranges[0]) == "10.0.0.100-10.0.0.199"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"network": IP("10.0.0.1")}, "host bits"),
        ({"ranges": (AddressRange(IP("10.0.1.1"), IP("10.0.1.9")),)}, "not inside"),
        ({"ranges": (AddressRange(IP("10.0.0.0"), IP("10.0.0.9")),)}, "network or broadcast"),
        (
            {
                "ranges": (
                    AddressRange(IP("10.0.0.10"), IP("10.0.0.20")),
                    AddressRange(IP("10.0.0.20"), IP("10.0.0.30")),
                )
            },
            "overlap",
        ),
        ({"router": IP("10.0.0.150")}, "router 10.0.0.150 is in a range"),
        ({"server_address": IP("10.0.0.150")}, "server_address"),
        ({"mtu": 20}, "MTU"),
        ({"lease_time": 0}, "lease_time"),
    ],
)
def test_bad_subnets_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lan_subnet(**changes)


def test_bad_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="before its start"):
        AddressRange(IP("10.0.0.9"), IP("10.0.0.1"))
    with pytest.raises(ValueError, match="host bits"):
        StaticRoute(IP("192.168.50.1"), 24, IP("10.0.0.254"))
    with pytest.raises(ValueError, match="http"):
        BootFiles(tftp_server=SERVER, http_base="tftp://x", script_url="http://x/{mac}")
    with pytest.raises(ValueError, match="boot file"):
        BootFiles(tftp_server=SERVER, http_base="http://x", script_url="http://x", bios="")
    with pytest.raises(ValueError, match="mode"):
        LinkConfig("eth0", "relay", SERVER)  # type: ignore[arg-type]


def test_bad_server_configs_are_refused() -> None:
    lan = lan_subnet()
    eth0 = LinkConfig("eth0", "server", SERVER, (LAN,))
    with pytest.raises(ValueError, match="listed twice"):
        ServerConfig(links=(eth0, eth0), subnets=(lan,))
    with pytest.raises(ValueError, match="unknown subnet"):
        ServerConfig(links=(LinkConfig("eth0", "server", SERVER, ("nope",)),), subnets=(lan,))
    with pytest.raises(ValueError, match="on links"):
        ServerConfig(links=(eth0, LinkConfig("eth1", "server", SERVER, (LAN,))), subnets=(lan,))
    with pytest.raises(ValueError, match="overlap"):
        ServerConfig(
            links=(eth0,), subnets=(lan, lan_subnet(id="other", prefix=16, network=IP("10.0.0.0")))
        )
    with pytest.raises(ValueError, match="min_lease"):
        ServerConfig(links=(eth0,), subnets=(lan,), min_lease=7200)
    in_range = LinkConfig("eth0", "server", IP("10.0.0.150"), (LAN,))
    with pytest.raises(ValueError, match="in a range"):
        ServerConfig(links=(in_range,), subnets=(lan,))


def test_boot_urls() -> None:
    boot = boot_files()
    assert boot.loader_url("ipxe.efi") == "http://10.0.0.1:5248/loaders/ipxe.efi"
    assert boot.script_for("aa:bb:cc:dd:ee:ff") == (
        "http://10.0.0.1:5248/boot/ipxe?mac=aa:bb:cc:dd:ee:ff"
    )
