"""Commissioning end to end in the virtual lab: real firmware, the real agent, the lab power
driver, and a real `edgebox serve`.

Two VMs start switched off, each with the lab driver (QMP) as its BMC. Commissioning powers
them on with a one-time network boot; each PXE-boots into the ephemeral environment, whose agent
runs the plan and reports. Shown:
- the VM with 2 vCPUs, 2 disks and 2 NICs commissions to Ready with an inventory that matches
  its QEMU definition, and an automatic tag for that hardware applies to it and not to the other;
- on the other VM, a user test script that exits 1 takes it to Failed commissioning with its
  output stored, and a script that sleeps past its timeout is timed out.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edgebox.lab.topology import Topology
from edgebox.lab.vm import VmSpec, disk_serial, nic_macs, qemu_argv
from tests.integration.daemon import Daemon
from tests.integration.test_boot_e2e import boot_files, boot_server  # noqa: F401 - a fixture
from tests.lab import skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

FAILING = """#!/bin/sh
# --- edgebox script ---
# name: e2e-fails
# title: A test that fails
# type: testing
# hardware_type: node
# timeout: 60
# parallel: any
# --- end ---
echo "checking the frobnicator"
echo "frobnicator on fire" >&2
exit 1
"""

SLEEPY = """#!/bin/sh
# --- edgebox script ---
# name: e2e-sleeps
# title: A test that overruns
# type: testing
# hardware_type: node
# timeout: 5
# parallel: any
# --- end ---
echo "going to sleep"
sleep 120
"""


# The built-in burn-in tests, with the verdict each gives on a QEMU VM: no SMART on virtio
# disks, and no GPU to compare with an inventory that has none.
BUILTIN_TESTS = {
    "cpu-stress": {"passed"},
    "memory-test": {"passed"},
    "disk-read": {"passed"},
    "smart-check": {"skipped"},
    "network-throughput": {"passed"},
    "gpu-presence": {"passed", "skipped"},
}


def call(daemon: Daemon, method: str, path: str, body: Any = None, text: str = "") -> Any:
    data = text.encode() if text else (json.dumps(body).encode() if body is not None else None)
    headers = {"Authorization": f"Bearer {daemon.admin_token}"}
    if data is not None:
        headers["Content-Type"] = "text/plain" if text else "application/json"
    request = urllib.request.Request(
        daemon.api_url + "/api/v1" + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
    return json.loads(raw) if raw else None


def start_vm(topology: Topology, spec: VmSpec, work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    taps = [f"t{spec.name}{k}"[:15] for k in range(1 + spec.extra_nics)]
    for tap in taps:
        topology.add_tap(tap)
    console = work / f"{spec.name}.console"
    with console.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", topology.vms_ns,
             *qemu_argv(spec, taps[0], work, extra_taps=taps[1:])],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return proc, console


def wait_status(daemon: Daemon, system_id: str, wanted: set[str], consoles: list[Path],
                timeout: float) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        machine = call(daemon, "GET", f"/machines/{system_id}")
        if machine["status"] in wanted:
            return dict(machine)
        time.sleep(2)
    tails = "\n".join(f"--- {c.name}\n{c.read_text(errors='replace')[-2500:]}" for c in consoles)
    events = call(daemon, "GET", f"/events?machine={system_id}&limit=50")["items"]
    lines = "\n".join(f"{e['type']}: {e['message']}" for e in events)
    raise AssertionError(f"{system_id} not in {wanted} after {timeout}s\n{lines}\n{tails}")


def test_commissioning_in_the_lab(tmp_path: Path, boot_files: tuple[Path, Path]) -> None:  # noqa: F811
    skip_unless_lab("qemu-system-x86_64", "ethtool")
    loaders, ephemeral = boot_files
    big = VmSpec("cbig", "52:54:00:c0:00:01", cpus=2, memory_mib=768, disk_gib=4,
                 extra_disks=1, extra_nics=1, qmp_socket=tmp_path / "cbig.qmp",
                 powered_off=True)  # fmt: skip
    small = VmSpec("csmall", "52:54:00:c0:00:02", cpus=1, memory_mib=512, disk_gib=2,
                   qmp_socket=tmp_path / "csmall.qmp", powered_off=True)  # fmt: skip
    with boot_server(tmp_path, loaders, ephemeral) as (daemon, topology):
        procs = []
        try:
            consoles = []
            machines = {}
            for spec in (big, small):
                proc, console = start_vm(topology, spec, tmp_path)
                procs.append(proc)
                consoles.append(console)
                macs = nic_macs(spec)
                machine = call(daemon, "POST", "/machines", {"mac": macs[0], "macs": macs[1:]})
                machines[spec.name] = machine["system_id"]
                assert spec.qmp_socket is not None
                call(daemon, "PUT", f"/machines/{machine['system_id']}/bmc",
                     {"driver": "lab", "address": str(spec.qmp_socket)})  # fmt: skip
            definition = "cpu.threads >= 2 and count(disk) >= 2 and count(nic) >= 2"
            call(daemon, "POST", "/tags", {"name": "bigbox", "definition": definition})
            call(daemon, "POST", "/scripts", text=FAILING)
            call(daemon, "POST", "/scripts", text=SLEEPY)

            call(daemon, "POST", f"/machines/{machines['cbig']}/actions/commission",
                 {"tests": list(BUILTIN_TESTS)})  # fmt: skip
            call(daemon, "POST", f"/machines/{machines['csmall']}/actions/commission",
                 {"tests": ["e2e-fails", "e2e-sleeps"]})  # fmt: skip

            ready = wait_status(daemon, machines["cbig"], {"ready", "failed_commissioning"},
                                consoles, 420)  # fmt: skip
            failed = wait_status(daemon, machines["csmall"], {"ready", "failed_commissioning"},
                                 consoles, 300)  # fmt: skip
            assert ready["status"] == "ready", ready
            assert failed["status"] == "failed_commissioning", failed

            # The inventory matches the VM's definition.
            inventory = call(daemon, "GET", f"/machines/{machines['cbig']}/inventory")
            assert inventory["cpu"]["threads"] == 2
            disks = {d["name"]: d for d in inventory["disks"]}
            assert set(disks) == {"vda", "vdb"}
            assert disks["vda"]["size_bytes"] == 4 << 30
            assert [disks[n]["serial"] for n in ("vda", "vdb")] == [
                disk_serial(big, 0),
                disk_serial(big, 1),
            ]
            assert {n["mac"] for n in inventory["nics"]} == set(nic_macs(big))
            assert 0.75 * 768 <= inventory["memory"]["total_mib"] <= 768
            assert inventory["system"]["vendor"] == "QEMU"

            # Every built-in test ran with the real agent and server (per disk where per disk).
            results = call(daemon, "GET", f"/machines/{machines['cbig']}/results")["results"]
            seen: dict[str, list[str]] = {}
            for result in results:
                seen.setdefault(result["script"], []).append(result["status"])
            for name, verdicts in BUILTIN_TESTS.items():
                assert seen.get(name) and set(seen[name]) <= verdicts, (name, seen)
            assert len(seen["disk-read"]) == 2  # one result per disk
            disk_rates = [
                r["results"].get("mb_per_s") for r in results if r["script"] == "disk-read"
            ]
            assert all(isinstance(rate, (int, float)) and rate > 0 for rate in disk_rates)

            # The automatic tag follows the hardware.
            assert "bigbox" in ready["tags"]
            assert "bigbox" not in failed["tags"]

            # The failing and the overrunning scripts, with their output.
            results = call(daemon, "GET", f"/machines/{machines['csmall']}/results")["results"]
            by_name = {r["script"]: r for r in results}
            assert by_name["edgebox-inventory"]["status"] == "passed"
            assert by_name["e2e-fails"]["status"] == "failed"
            assert by_name["e2e-fails"]["exit_code"] == 1
            assert by_name["e2e-sleeps"]["status"] == "timedout"
            failing = by_name["e2e-fails"]["id"]
            detail = call(daemon, "GET", f"/machines/{machines['csmall']}/results/{failing}")
            assert "frobnicator on fire" in json.dumps(detail)

            # Power went through the lab driver: on with network boot, and the event says so.
            for system_id in machines.values():
                events = call(daemon, "GET", f"/events?machine={system_id}&limit=200")["items"]
                done = [e["message"] for e in events if e["type"] == "power.done"]
                assert any("network boot" in m for m in done), done
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(10)
