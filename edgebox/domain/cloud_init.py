"""The NoCloud-net documents a deployed OS's cloud-init reads (docs/deploy-contract.md §3).

cloud-init fetches `meta-data`, `user-data`, `vendor-data` and `network-config` from the seed
URL that the agent wrote into the image's CIDATA partition. meta-data and network-config are
YAML; every scalar here is written as a JSON string, which YAML reads as a double-quoted
scalar, so a hostname or key can never break the document however odd its characters.
user-data is the deploy request's own text; vendor-data is edgebox's cloud-config, which
cloud-init merges under the user's (the user's settings win), and which phones home once the
machine is up.

Standard library only: these are pure renderings of a deployment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

EMPTY_USER_DATA: Final = "#cloud-config\n{}\n"
DOCUMENTS: Final = ("meta-data", "user-data", "vendor-data", "network-config")


def _q(text: str) -> str:
    return json.dumps(text)


def meta_data(instance_id: str, hostname: str, ssh_keys: Sequence[str]) -> str:
    lines = [
        f"instance-id: {_q(instance_id)}",
        f"local-hostname: {_q(hostname)}",
    ]
    if ssh_keys:
        lines.append("public-keys:")
        lines += [f"  - {_q(key)}" for key in ssh_keys]
    return "\n".join(lines) + "\n"


def user_data(text: str) -> str:
    """The request's user-data as given; none at all is an empty cloud-config."""
    return text if text.strip() else EMPTY_USER_DATA


def vendor_data(phone_home_url: str) -> str:
    return (
        "#cloud-config\n"
        "phone_home:\n"
        f"  url: {_q(phone_home_url)}\n"
        "  post: [instance_id]\n"
        "  tries: 10\n"
    )


def network_config(boot_mac: str) -> str:
    """DHCP on the NIC the machine booted from, matched by MAC (names differ between the
    ephemeral environment and the deployed OS). Without a known MAC: every Ethernet NIC."""
    match = f"macaddress: {_q(boot_mac)}" if boot_mac else 'name: "e*"'
    return (
        "version: 2\n"
        "ethernets:\n"
        "  boot:\n"
        "    match:\n"
        f"      {match}\n"
        "    dhcp4: true\n"
    )  # fmt: skip
