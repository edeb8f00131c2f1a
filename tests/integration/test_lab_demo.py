"""The newcomer's path, whole: `scripts/run --demo` as the README gives it, on two lab VMs.

scripts/run installs what is missing, fetches the loaders into firmware-images/ (a relative
directory, as a user runs it), builds the ephemeral environment and the tiny image (cached),
and runs `edgebox lab up --demo`: the VMs enlist, the lab sets their BMCs, and the demo runs
`edgebox commission --all --wait`, `edgebox deploy --all --image tiny --wait` and `edgebox
release --all --erase quick --wait` as a person would, then stops. vm0 boots with BIOS and
QEMU's iPXE ROM; vm1 with UEFI and OVMF's own PXE client, which fetches snponly.efi over TFTP
(no iPXE ROM: the path a server's vendor firmware takes). The event log, read from the lab's
database after it stopped, must show each machine's whole lifecycle.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.daemon import free_port
from tests.lab import skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("qemu-system-x86_64", "dnsmasq", "ethtool", "zstd", "syslinux", "objcopy", "mcopy")
LIFECYCLE = [
    "new",
    "commissioning",
    "ready",
    "allocated",  # a deploy of a Ready machine allocates it first
    "deploying",
    "deployed",
    "releasing",
    "disk_erasing",
    "ready",
]


def statuses(db: sqlite3.Connection, system_id: str) -> list[str]:
    seen = []
    rows = db.execute(
        "SELECT type, data FROM events WHERE machine = ? ORDER BY seq", (system_id,)
    ).fetchall()
    for kind, data in rows:
        if kind == "machine.created":
            seen.append("new")
        elif kind == "machine.status":
            seen.append(json.loads(data)["to"])
    return seen


@pytest.mark.timeout(2400)
def test_scripts_run_demo_takes_two_vms_through_the_lifecycle(tmp_path: Path) -> None:
    skip_unless_lab(*TOOLS)
    name = f"d{os.getpid() % 10000}{int(time.time()) % 1000}"
    data = tmp_path / "data"
    env = {
        **os.environ,
        "EDGEBOX_LAB_DATA_DIR": str(data),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # the lab logs the CLI in: not root's
    }
    log = tmp_path / "run.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run"), "--name", name, "--vms", "2",
             "--api-port", str(free_port()), "--demo"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            returncode = proc.wait(2300)
        finally:
            if proc.poll() is None:  # interrupted or too slow: let the lab remove itself
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    subprocess.run([sys.executable, "-m", "edgebox", "lab", "--name", name,
                                    "down"], env=env, check=False, timeout=60)  # fmt: skip
    text = log.read_text(errors="replace")
    assert returncode == 0, text[-6000:]
    for command in ("edgebox commission --all --wait", "edgebox deploy --all --image tiny",
                    "edgebox release --all --erase quick --wait"):  # fmt: skip
        assert f"edgebox lab demo: $ {command}" in text, text[-3000:]
    assert "its BMC is the lab driver" in text
    assert "each machine's timeline" in text and "done; every machine was" in text
    # The lab logged the CLI in to itself, in the XDG_CONFIG_HOME it was given.
    assert (tmp_path / "config" / "edgebox" / "cli.json").exists()
    # The loaders landed in the repository's firmware-images/, from a relative path.
    assert (ROOT / "firmware-images" / "snponly.efi").exists()

    db = sqlite3.connect(data / "edgebox.db")
    try:
        rows = db.execute(
            "SELECT m.system_id, i.mac FROM machines m JOIN interfaces i ON i.machine_id = m.id"
        ).fetchall()
        by_mac = {mac: system_id for system_id, mac in rows}
        assert set(by_mac) == {"52:54:00:eb:1a:00", "52:54:00:eb:1a:01"}, rows
        for mac, system_id in by_mac.items():
            assert statuses(db, system_id) == LIFECYCLE, (mac, statuses(db, system_id))
        # vm1 (UEFI, no iPXE ROM) took snponly.efi over TFTP, every time it network-booted.
        loaders = [
            detail
            for (detail,) in db.execute(
                "SELECT json_extract(data, '$.detail') FROM events WHERE type = 'boot.loader' "
                "AND json_extract(data, '$.mac') = '52:54:00:eb:1a:01'"
            )
        ]
        assert loaders and set(loaders) == {"snponly.efi"}, loaders
        assert len(loaders) >= 4  # enlist, commission, deploy, release (and disk boots)
    finally:
        db.close()
    # Nothing of the lab is left.
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    assert f"eblab-{name}-" not in namespaces
