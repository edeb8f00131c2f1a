"""`edgebox lab up` builds the lab, boots VMs from edgebox, and removes everything on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.daemon import free_port
from tests.lab import skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_lab_up_boots_vms_and_cleans_up(tmp_path: Path) -> None:
    skip_unless_lab("qemu-system-x86_64", "dnsmasq", "ethtool")
    # As scripts/run does first: vm1 boots with UEFI's own PXE, which needs snponly.efi.
    fetched = subprocess.run([str(ROOT / "scripts" / "fetch-loaders")], capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    name = f"t{int(time.time()) % 100000}"
    port = free_port()
    log = tmp_path / "lab.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgebox", "lab", "--name", name, "--data-dir",
             str(tmp_path / "data"), "up", "--vms", "2", "--api-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
            # The lab logs the CLI in to itself: in this test's config home, not root's.
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        events: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            text = log.read_text()
            token = re.search(r"^\s+(ebx_\S+)$", text, re.M)
            if token:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v1/events?limit=200",
                    headers={"Authorization": f"Bearer {token.group(1)}"},
                )
                with urllib.request.urlopen(request, timeout=5) as resp:
                    events = json.loads(resp.read())["items"]
                macs = {e["data"].get("mac") for e in events if e["type"] == "boot.script"}
                if len(macs) == 2:
                    break
            assert proc.poll() is None, text
            time.sleep(1)
        macs = {e["data"].get("mac") for e in events if e["type"] == "boot.script"}
        assert macs == {"52:54:00:eb:1a:00", "52:54:00:eb:1a:01"}, log.read_text()[-3000:]
        assert {f"eblab-{name}-srv", f"eblab-{name}-vms"} <= _namespaces()
        status = subprocess.run(
            [sys.executable, "-m", "edgebox", "lab", "--name", name, "--data-dir",
             str(tmp_path / "data"), "status"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "processes alive: 3 of 3" in status.stdout, status.stdout
        # Each VM's power is reachable through the lab driver at the socket status names.
        for vm in ("vm0", "vm1"):
            socket = tmp_path / "data" / "lab" / name / f"{vm}.qmp"
            assert f"{vm}: power on; driver lab, address {socket}" in status.stdout, status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not {f"eblab-{name}-srv", f"eblab-{name}-vms"} & _namespaces()
    assert not (tmp_path / "data" / "lab" / f"{name}.json").exists()
