"""The virtual lab's network: two namespaces joined by a veth pair, a bridge for the VMs.

    host ── (API on 127.0.0.1) edgebox process
                 │ sockets opened inside ↓ (DHCP, TFTP, boot HTTP)
    eblab-NAME-srv:  eblab-s  10.233.0.1/24, fd00:eb::1/64  (+ router advertisements)
                 │ veth
    eblab-NAME-vms:  eblab-v ─ br0 ─ tap0, tap1, ...  (one QEMU VM per tap)

Nothing of the lab exists in the host's namespace, so no lab packet can reach a real network.
The bridge has STP off and no forwarding delay (otherwise a ROM's first DHCP packet is lost),
and the server side sends IPv6 router advertisements (without them iPXE waits ~13 s for
IPv6 autoconfiguration after its DHCPv4 ACK). Names are per lab, so labs do not collide.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

SERVER_IF = "eblab-s"
VMS_IF = "eblab-v"
BRIDGE = "br0"
SUBNET = "10.233.0.0/24"
SERVER_IP = "10.233.0.1"
SERVER_IP6 = "fd00:eb::1"


class LabError(RuntimeError):
    """A lab step failed; the message has the command and its output."""


@dataclass(frozen=True, slots=True)
class Topology:
    name: str

    @property
    def server_ns(self) -> str:
        return f"eblab-{self.name}-srv"

    @property
    def vms_ns(self) -> str:
        return f"eblab-{self.name}-vms"

    def exists(self) -> bool:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
        names = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
        return self.server_ns in names or self.vms_ns in names

    def create(self) -> None:
        srv, vms = self.server_ns, self.vms_ns
        steps = [
            ["ip", "netns", "add", srv],
            ["ip", "netns", "add", vms],
            ["ip", "-n", srv, "link", "add", SERVER_IF, "type", "veth", "peer", "name", VMS_IF,
             "netns", vms],
            ["ip", "-n", vms, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0",
             "forward_delay", "0"],
            ["ip", "-n", vms, "link", "set", VMS_IF, "master", BRIDGE],
            ["ip", "-n", srv, "addr", "add", f"{SERVER_IP}/24", "dev", SERVER_IF],
            ["ip", "-n", srv, "addr", "add", f"{SERVER_IP6}/64", "dev", SERVER_IF, "nodad"],
            ["ip", "-n", srv, "link", "set", "lo", "up"],
            ["ip", "-n", srv, "link", "set", SERVER_IF, "up"],
            ["ip", "-n", vms, "link", "set", "lo", "up"],
            ["ip", "-n", vms, "link", "set", VMS_IF, "up"],
            ["ip", "-n", vms, "link", "set", BRIDGE, "up"],
        ]  # fmt: skip
        try:
            for argv in steps:
                run(argv)
            # Checksums in software: QEMU hands a guest without checksum offload a packet
            # whose UDP checksum the veth left to "hardware" (only 67->68 is patched up).
            run(["ip", "netns", "exec", srv, "ethtool", "-K", SERVER_IF, "tx", "off"], check=False)
        except BaseException:
            self.delete()
            raise

    def add_tap(self, tap: str) -> None:
        run(["ip", "-n", self.vms_ns, "tuntap", "add", "dev", tap, "mode", "tap"])
        run(["ip", "-n", self.vms_ns, "link", "set", tap, "master", BRIDGE])
        run(["ip", "-n", self.vms_ns, "link", "set", tap, "up"])

    def pids(self) -> list[int]:
        found: list[int] = []
        for ns in (self.server_ns, self.vms_ns):
            out = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
            )
            found += [int(word) for word in out.stdout.split() if word.isdigit()]
        return found

    def delete(self) -> None:
        for ns in (self.vms_ns, self.server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def run(argv: list[str], check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
