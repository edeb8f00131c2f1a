"""edgebox on a full disk: a real `edgebox serve` whose data_dir is on a small file system of
the test's own. Filled to the last byte, writes fail with a JSON 503 and /health says why,
while the daemon stays up and reads go on; DHCP answers no REQUEST it cannot commit (no ACK,
no NAK). Once the filler is deleted, writes succeed again without a restart, and everything
acknowledged before — machines and ACKed leases — is still there after one."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.utils import rdpcap

from tests.integration.daemon import Daemon, running, start, write_config
from tests.integration.small_disk import fill, small_disk
from tests.lab import Lab, skip_unless_lab
from tests.lab.clients import DhcpClientError, make_client

pytestmark = [pytest.mark.root, pytest.mark.slow]

SUBNET = {
    "cidr": "10.233.0.0/24",
    "ranges": [{"start": "10.233.0.100", "end": "10.233.0.199"}],
    "router": "10.233.0.1",
    "lease_time": 600,
}


def call(
    daemon: Daemon, method: str, path: str, body: object = None, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(daemon.api_url + "/api/v1" + path, data, method=method)
    request.add_header("Authorization", f"Bearer {token or daemon.admin_token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def create_machine(daemon: Daemon, n: int, token: str) -> tuple[int, Any, dict[str, str]]:
    mac = f"52:54:01:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
    return call(daemon, "POST", "/machines", {"mac": mac, "tags": ["x" * 40]}, token)


def machine_ids(daemon: Daemon, token: str) -> set[str]:
    status, page, _ = call(daemon, "GET", "/machines?limit=1000", token=token)
    assert status == 200, page
    return {m["system_id"] for m in page["items"]}


def fill_until_writes_fail(daemon: Daemon, disk: Path, token: str, acked: list[str]) -> Any:
    """Fill the file system, then create machines until the database refuses one (the WAL
    may still hold room for a few); every machine acknowledged meanwhile goes to `acked`."""
    fill(disk)
    for n in range(10_000, 12_000):
        status, body, headers = create_machine(daemon, n, token)
        if status == 201:
            acked.append(body["system_id"])
            continue
        assert status == 503, (status, body)
        return body, headers
    raise AssertionError("2,000 writes on a full disk all succeeded")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_full_disk_fails_writes_with_503_until_space_returns(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        config = write_config(tmp_path / "work", data_dir=str(disk / "data"))
        daemon = start(config)
        try:
            token = daemon.admin_token
            assert token
            data = disk / "data"
            for name in ("edgebox.db", "edgebox.db-wal", "edgebox.db-shm", "secrets.key"):
                assert mode(data / name) == 0o600, name
            acked = []
            for n in range(20):
                status, body, _ = create_machine(daemon, n, token)
                assert status == 201, body
                acked.append(body["system_id"])

            body, headers = fill_until_writes_fail(daemon, disk, token, acked)
            assert body["error"] == "storage_unavailable"
            assert body["message"].startswith("the database's disk is full (")
            assert f"bytes free in {data}); free some space there" in body["message"]
            assert int(headers["Retry-After"]) > 0
            for n in range(20, 25):  # and it stays so, without ending the daemon
                assert create_machine(daemon, n, token)[0] == 503
            assert daemon.proc.poll() is None
            status, health, _ = call(daemon, "GET", "/health")
            assert status == 200 and health["status"] == "ok"
            assert health["storage"].startswith("failing: the database's disk is full")
            assert machine_ids(daemon, token) == set(acked)  # reads go on

            (disk / "filler").unlink()  # space is back: no restart, no action
            status, body, _ = create_machine(daemon, 30, token)
            assert status == 201, body
            acked.append(body["system_id"])
            assert call(daemon, "GET", "/health")[1]["storage"] == "ok"
            assert machine_ids(daemon, token) == set(acked)

            log = daemon.stderr
            assert log.count("database writes failing") == 1, log
            assert log.count("database writes succeed again") == 1, log
            assert "Traceback" not in log and "internal error" not in log
            assert daemon.stop() == 0
            with running(config, name="after") as again:
                assert machine_ids(again, token) == set(acked)  # nothing acked was lost
                again.stop()
        finally:
            if daemon.proc.poll() is None:
                daemon.stop(signal.SIGKILL)


def dhcp_messages(pcap: Path) -> list[tuple[int, int]]:
    """(BOOTP op, DHCP message type) of every DHCP packet captured: op 1 from the client
    (3 REQUEST), op 2 from the server (2 OFFER, 5 ACK, 6 NAK)."""
    seen = []
    for packet in rdpcap(str(pcap)):
        if BOOTP in packet and DHCP in packet:
            options = dict(o for o in packet[DHCP].options if isinstance(o, tuple) and len(o) == 2)
            seen.append((int(packet[BOOTP].op), int(options["message-type"])))
    return seen


def test_dhcp_on_a_full_disk_answers_no_request_and_loses_no_acked_lease(tmp_path: Path) -> None:
    skip_unless_lab("dhclient", "tcpdump")
    with Lab() as lab, small_disk(tmp_path / "disk") as disk:
        net = lab.two_hosts(server_addr="10.233.0.1/24")
        dhcp = {
            "interfaces": [{"name": net.server_if, "netns": net.server_ns}],
            "subnets": [SUBNET],
            "rogue_probe_interval": 0,
            "arp_probe_ms": 0,
        }
        config = write_config(tmp_path / "work", data_dir=str(disk / "data"), dhcp=dhcp)
        daemon = start(config)
        try:
            token = daemon.admin_token
            assert token
            with make_client("dhclient", lab, net.client_ns, net.client_if) as first:
                before = first.obtain()  # ACKed while there is space; dhclient keeps it
            first_mac = lab.mac(net.client_ns, net.client_if)

            fill_until_writes_fail(daemon, disk, token, [])
            second_mac = "52:54:02:00:00:02"  # another machine on the same wire
            lab.ip("link", "set", "dev", net.client_if, "down", ns=net.client_ns)
            lab.ip("link", "set", "dev", net.client_if, "address", second_mac, ns=net.client_ns)
            lab.ip("link", "set", "dev", net.client_if, "up", ns=net.client_ns)
            pcap = lab.tmpdir / "full.pcap"
            capture = lab.run(
                net.client_ns,
                ["tcpdump", "-U", "-n", "-i", net.client_if, "-w", str(pcap), "udp", "port", "68"],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
            with make_client("dhclient", lab, net.client_ns, net.client_if) as second:
                with pytest.raises(DhcpClientError):
                    second.obtain(timeout=8)  # OFFERs, then silence for each REQUEST
                time.sleep(0.5)
                lab.stop(capture)
                seen = dhcp_messages(pcap)
                assert (2, 2) in seen and (1, 3) in seen, seen  # offered, and requested ...
                assert (2, 5) not in seen and (2, 6) not in seen, seen  # ... no ACK, no NAK
                assert daemon.proc.poll() is None

                (disk / "filler").unlink()  # space is back
                after = second.obtain(timeout=20)
            assert after.address != before.address
            status, leases, _ = call(daemon, "GET", "/dhcp/leases", token=token)
            assert status == 200
            held = {(x["ip"], x["mac"]) for x in leases["items"]}
            assert {(before.address, first_mac), (after.address, second_mac)} <= held
            assert daemon.stop() == 0
            with running(config, name="after") as again:  # both ACKed leases survived
                _, leases, _ = call(again, "GET", "/dhcp/leases", token=token)
                held = {(x["ip"], x["mac"]) for x in leases["items"]}
                assert {(before.address, first_mac), (after.address, second_mac)} <= held
                again.stop()
            assert daemon.stderr.count("database writes failing") == 1
            assert "Traceback" not in daemon.stderr
        finally:
            if daemon.proc.poll() is None:
                daemon.stop(signal.SIGKILL)
