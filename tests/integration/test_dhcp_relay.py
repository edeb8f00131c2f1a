"""A relay agent (ISC dhcrelay) in a third namespace: the client gets an address from the
subnet of the relay's giaddr, and edgebox answers through the relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.dhcp_lab import edgebox_dhcp, leases
from tests.lab import Lab, skip_unless_lab
from tests.lab.clients import make_client

pytestmark = pytest.mark.root


def test_relayed_client_gets_an_address_of_the_relay_subnet(tmp_path: Path) -> None:
    skip_unless_lab("dhcrelay", "dhclient")
    with Lab() as lab:
        net = lab.relay_topology(client_subnet="10.231.20.0/24", server_subnet="10.231.21.0/24")
        subnets = [
            {  # the served link itself: no ranges, nothing to hand out there
                "cidr": "10.231.21.0/24",
            },
            {  # reached only through the relay
                "cidr": "10.231.20.0/24",
                "ranges": [{"start": "10.231.20.50", "end": "10.231.20.60"}],
                "router": "10.231.20.1",
            },
        ]
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(tmp_path, [iface], subnets) as daemon:
            relay = lab.run(
                net.relay_ns,
                ["dhcrelay", "-4", "-d", "-q", "-id", net.relay_client_if,
                 "-iu", net.relay_server_if, net.server_addr.split("/")[0]],
            )  # fmt: skip
            with make_client("dhclient", lab, net.client_ns, net.client_if) as client:
                lease = client.obtain()
                assert lease.address.startswith("10.231.20.")
                assert 50 <= int(lease.address.rsplit(".", 1)[1]) <= 60
                assert lease.router == "10.231.20.1"
                assert lease.server_id == "10.231.21.2"
                stored = [x for x in leases(daemon) if x["ip"] == lease.address]
                assert stored and stored[0]["subnet"] == "10.231.20.0/24"
                assert stored[0]["state"] == "bound"
            lab.stop(relay)
