"""The boot window rule against a real `edgebox serve`, attacked from another address.

The intruder knows the victim's MAC and calls port 5248 from 127.0.0.2; the victim machine
speaks from 127.0.0.1. DHCP is off here (as in proxy mode or behind another server's relay),
so the first claim of a window binds its address (docs/security.md).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from edgebox.services.boot_resources import BootResources
from tests.boot_tokens import token_from_cpio, token_url
from tests.integration.daemon import Daemon, running, write_config

VICTIM = "52:54:00:66:00:01"
MACHINE = "127.0.0.1"
INTRUDER = "127.0.0.2"


def fake_ephemeral(root: Path) -> Path:
    build = root / "build"
    build.mkdir(parents=True)
    files = {}
    for name, data in (("vmlinuz", b"kernel"), ("initrd.gz", b"initrd")):
        (build / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (build / "manifest.json").write_text(json.dumps({"files": files, "kernel_version": "6.1"}))
    return build


def machine_port(daemon: Daemon) -> int:
    return int(yaml.safe_load(daemon.config.read_text())["machine_http"]["port"])


def from_address(
    daemon: Daemon, source: str, method: str, path: str, body: Any = None, token: str = ""
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", machine_port(daemon), timeout=10, source_address=(source, 0)
    )
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)  # fmt: skip
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def api(daemon: Daemon, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{daemon.api_url}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {daemon.admin_token}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def script(daemon: Daemon, source: str) -> str:
    status, body = from_address(daemon, source, "GET", f"/boot/ipxe?mac={VICTIM}")
    assert status == 200
    return body.decode()


def test_an_intruder_with_the_victims_mac_gets_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    BootResources(tmp_path / "data" / "boot-resources").import_dir(fake_ephemeral(tmp_path))
    with running(config) as daemon:
        victim = api(daemon, "POST", "/machines", {"mac": VICTIM})["system_id"]
        api(daemon, "POST", f"/machines/{victim}/actions/mark-broken", {})
        assert api(daemon, "POST", f"/machines/{victim}/actions/mark-fixed", {})["status"] == (
            "ready"
        )
        # 1. A Ready machine: nobody gets a token for it, however often they ask.
        for source in (INTRUDER, MACHINE):
            ready_script = script(daemon, source)
            assert "edgebox.purpose=poweroff" in ready_script
            assert token_url(ready_script) is None and "edgebox.token" not in ready_script

        # 2. edgebox opens a window (commissioning); the machine claims it from its address.
        api(daemon, "PUT", f"/machines/{victim}/bmc", {"driver": "manual"})
        started = api(daemon, "POST", f"/machines/{victim}/actions/commission", {})
        assert started["status"] == "commissioning"
        claimed = script(daemon, MACHINE)
        path = token_url(claimed)
        assert path is not None and "edgebox.token" not in claimed
        # The token's initrd goes to the claimant only, once.
        assert from_address(daemon, INTRUDER, "GET", path)[0] == 404
        status, archive = from_address(daemon, MACHINE, "GET", path)
        assert status == 200
        token = token_from_cpio(archive)
        assert from_address(daemon, MACHINE, "GET", path)[0] == 404

        # 3. The intruder asks for the same window: nothing, and an error event names both.
        assert token_url(script(daemon, INTRUDER)) is None
        deadline = time.monotonic() + 5
        refusals: list[dict[str, Any]] = []
        while not refusals and time.monotonic() < deadline:
            events = api(daemon, "GET", f"/events?machine={victim}&limit=1000")["items"]
            refusals = [e for e in events if e["type"] == "boot.refused"]
            time.sleep(0.1)
        [refusal] = refusals
        assert refusal["level"] == "error"
        assert (refusal["data"]["source"], refusal["data"]["holder"]) == (INTRUDER, MACHINE)

        # 4. A token sniffed off the wire is worth nothing from another address.
        status, body = from_address(daemon, INTRUDER, "POST", "/machine/v1/heartbeat", {}, token)
        assert status == 403 and b"handed to 127.0.0.1" in body
        status, _ = from_address(daemon, MACHINE, "POST", "/machine/v1/heartbeat", {}, token)
        assert status == 200
        # The token is in no log.
        assert token not in daemon.stderr and token not in daemon.stdout
