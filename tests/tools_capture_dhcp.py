"""Capture the DHCP requests of real clients and firmware as golden fixtures (run as root).

    python -m tests.tools_capture_dhcp

Runs, inside a lab of network namespaces, edgebox's DHCP server with tcpdump on the server
side, then ISC dhclient, busybox udhcpc and dhcpcd, a QEMU VM with its iPXE ROM (BIOS), and
a UEFI VM with OVMF's own PXE and HTTP boot clients. The first DISCOVER and REQUEST of each
are written as hex to tests/unit/wire/dhcp/captured/<client>_<type>.hex; the golden test
renders them and checks the boot decision for each. Re-run only to refresh the captures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.utils import rdpcap

from tests.integration.dhcp_lab import edgebox_dhcp
from tests.integration.qemu_vm import start_vm
from tests.lab import Lab
from tests.lab.clients import make_client

OUT = Path(__file__).parent / "unit" / "wire" / "dhcp" / "captured"
SUBNET = {
    "cidr": "10.231.0.0/24",
    "ranges": [{"start": "10.231.0.100", "end": "10.231.0.199"}],
    "router": "10.231.0.1",
}
CLIENT_MACS = {
    "52:54:00:c0:00:01": "ipxe_bios",
    "52:54:00:c0:00:02": "ovmf",
}
TYPES = {1: "discover", 3: "request"}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="capture-"))
    macs: dict[str, str] = dict(CLIENT_MACS)
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        pcap = lab.tmpdir / "capture.pcap"
        tcpdump = lab.run(
            net.server_ns,
            ["tcpdump", "-U", "-n", "-i", net.server_if, "-w", str(pcap), "udp", "port", "67"],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        iface = {"name": net.server_if, "netns": net.server_ns}
        with edgebox_dhcp(work, [iface], [SUBNET], arp_probe_ms=0):
            for kind in ("dhclient", "udhcpc", "dhcpcd"):
                ns = lab.netns(f"c-{kind}")
                lab.veth(ns, "eth0", net.client_ns, f"br-{kind}"[:15])
                lab.attach(net.client_ns, f"br-{kind}"[:15], "br0")
                macs[lab.mac(ns, "eth0")] = kind
                with make_client(kind, lab, ns, "eth0") as client:
                    client.obtain()
            bios = start_vm(lab, net.client_ns, "br0", "bios", "52:54:00:c0:00:01")
            uefi = start_vm(
                lab, net.client_ns, "br0", "uefi", "52:54:00:c0:00:02",
                firmware="uefi", ipxe_rom=False,
            )  # fmt: skip
            time.sleep(60)
            lab.stop(bios.proc)
            lab.stop(uefi.proc)
        lab.stop(tcpdump)
        return _write(pcap, macs)


def _write(pcap: Path, macs: dict[str, str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for packet in rdpcap(str(pcap)):
        if BOOTP not in packet or DHCP not in packet or packet[BOOTP].op != 1:
            continue
        options = dict(o for o in packet[DHCP].options if isinstance(o, tuple) and len(o) == 2)
        mac = packet[BOOTP].chaddr[:6].hex(":")
        client = macs.get(mac)
        kind = TYPES.get(int(options.get("message-type", 0)))
        if client is None or kind is None:
            continue
        if client == "ovmf":
            vendor = options.get("vendor_class_id", b"")
            client = "ovmf_http" if bytes(vendor).startswith(b"HTTPClient") else "ovmf_pxe"
        name = f"{client}_{kind}"
        if name in written:
            continue
        payload = bytes(packet[BOOTP])
        lines = [payload[i : i + 16].hex(" ") for i in range(0, len(payload), 16)]
        header = f"# {name}: captured from a real client by tests/tools_capture_dhcp.py\n"
        (OUT / f"{name}.hex").write_text(header + "\n".join(lines) + "\n")
        written.add(name)
    print("captured:", ", ".join(sorted(written)))
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
