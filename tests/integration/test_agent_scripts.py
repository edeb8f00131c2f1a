"""The agent's script runner (commissioning and testing) and the built-in scripts.

On the host: the agent of the built initramfs, run with that initramfs's busybox (nothing else
on PATH), against the stand-in machine API on 127.0.0.1 serving a plan of small scripts; the
oracle is what the stand-in recorded (calls, uploads, done bodies) and the console markers.
In a VM: the same agent boots for real with two CPUs, three disks (two virtio, one NVMe), two
NICs and an IPMI BMC, runs every built-in script plus the small ones, and its inventory
bundle is parsed and compared with how QEMU was told to build the VM.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgebox.domain.hardware_bundle import parse_bundle
from tests.integration.ephemeral_initramfs import AgentRun, read_newc, unpack
from tests.integration.ephemeral_lab import (
    Ephemeral,
    MachineApi,
    Plan,
    VmSpec,
    api_argv,
    api_started,
    boot_vm,
    build_ephemeral,
    start_api,
    start_dnsmasq,
)
from tests.lab import Lab, skip_unless_lab, stop_process

pytestmark = [pytest.mark.root, pytest.mark.slow]

TOKEN = "t0k"
REPO = Path(__file__).resolve().parents[2]
BUILTIN = REPO / "edgebox" / "services" / "builtin_scripts"
CALLS = ["script", "env", "start", "stdout", "stderr", "result", "done"]


@pytest.fixture(scope="module")
def ephemeral() -> Ephemeral:
    skip_unless_lab("qemu-system-x86_64", "dnsmasq", "apt-get", "dpkg", "modinfo")
    return build_ephemeral()


@pytest.fixture(scope="module")
def agent(ephemeral: Ephemeral, tmp_path_factory: pytest.TempPathFactory) -> AgentRun:
    root = tmp_path_factory.mktemp("initramfs")
    unpack(read_newc(ephemeral.initrd), root)
    return AgentRun(root, tmp_path_factory.mktemp("agent"))


# -- plans ----------------------------------------------------------------------------------------

# Each window script prints "start T" and "end T" (uptime seconds) around a sleep.
WINDOW = """#!/bin/sh
echo "start $(cut -d ' ' -f 1 /proc/uptime)"
sleep {seconds}
echo "end $(cut -d ' ' -f 1 /proc/uptime)"
"""
SCRIPTS = {
    "ok": """#!/bin/sh
echo "greeting=$EDGEBOX_PARAM_GREETING device=$EDGEBOX_DEVICE id=$EDGEBOX_RESULT_ID"
echo "result_path=$RESULT_PATH"
echo "output_dir=$OUTPUT_DIR"
echo "cwd=$(pwd)"
printf 'nul:\\000:end\\n'
printf 'status: degraded\\nresults:\\n  answer: 42\\n' >"$RESULT_PATH"
""",
    "fails": """#!/bin/sh
echo "checking the disk"
echo "boom: disk on fire" >&2
exit 1
""",
    # Overruns its timeout; leaves a child behind that must die with it.
    "sleeper": """#!/bin/sh
sleep 300 &
echo $! >"$OUTPUT_DIR/child"
echo "sleeping"
wait
""",
    "window": WINDOW.format(seconds=2),
    "short-window": WINDOW.format(seconds=1),
}


@dataclass(frozen=True)
class Line:
    id: str
    parallel: str
    timeout: int
    name: str
    script: str  # a key of SCRIPTS, or a built-in script's name
    env: tuple[tuple[str, str], ...] = ()


def write_plan(lines: list[Line], directory: Path, running_action: str = "continue") -> Plan:
    directory.mkdir(parents=True, exist_ok=True)
    uploads = directory / "uploads"
    uploads.mkdir(exist_ok=True)
    entries = []
    for line in lines:
        if line.script in SCRIPTS:
            path = directory / f"{line.script}.sh"
            path.write_text(SCRIPTS[line.script])
        else:
            path = BUILTIN / line.script
        entries.append(
            {"id": line.id, "parallel": line.parallel, "timeout": line.timeout,
             "name": line.name, "script": str(path), "env": dict(line.env)}
        )  # fmt: skip
    plan_file = directory / "plan.json"
    plan_file.write_text(json.dumps(entries))
    return Plan(plan_file, uploads, running_action)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start the stand-in API on 127.0.0.1 with a plan; stopped after the test."""
    procs: list[subprocess.Popen[str]] = []

    def start(plan: Plan, actions: list[str]) -> MachineApi:
        record = tmp_path / "api.jsonl"
        argv = api_argv("127.0.0.1", 0, TOKEN, actions, record, plan)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        return api_started(proc, "127.0.0.1", record, plan)

    yield start
    for proc in procs:
        stop_process(proc)


# -- oracles --------------------------------------------------------------------------------------


def calls_of(api: MachineApi, result_id: str) -> list[str]:
    prefix = f"/machine/v1/results/{result_id}/"
    return [r["path"].removeprefix(prefix) for r in api.requests() if r["path"].startswith(prefix)]


def done_of(api: MachineApi, result_id: str) -> dict[str, Any]:
    [done] = [r["body"] for r in api.requests() if r["path"].endswith(f"/{result_id}/done")]
    return dict(done)


def window(api: MachineApi, result_id: str) -> tuple[float, float]:
    out = (api.uploaded(result_id, "stdout") or b"").decode()
    start = re.search(r"^start (\S+)", out, re.M)
    end = re.search(r"^end (\S+)", out, re.M)
    assert start and end, out
    return float(start.group(1)), float(end.group(1))


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def gone_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# -- on the host ----------------------------------------------------------------------------------


def test_plan_runs_with_exit_codes_timeouts_and_parallelism(
    agent: AgentRun, serve: Any, tmp_path: Path
) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two CPUs: the agent runs one `any` script per CPU")
    plan = write_plan(
        [
            Line("r1", "any", 60, "ok", "ok", (("EDGEBOX_PARAM_GREETING", "it's ok"),
                                                ("EDGEBOX_DEVICE", "/dev/vdz"))),
            Line("r2", "any", 60, "fails", "fails"),
            Line("r3", "any", 60, "window-a", "window"),
            Line("r4", "any", 60, "window-b", "window"),
            Line("r5", "disabled", 60, "alone", "short-window"),
            Line("r6", "instance", 60, "same", "short-window"),
            Line("r7", "instance", 60, "same", "short-window"),
            Line("r8", "any", 2, "sleeper", "sleeper"),
        ],
        tmp_path / "plan",
    )  # fmt: skip
    api = serve(plan, ["continue", "poweroff"])
    started = time.monotonic()
    done = agent.run(
        api.url, TOKEN, Path("/sys"), Path("/proc"), timeout=90,
        EDGEBOX_PURPOSE="commission", EDGEBOX_HEARTBEAT="1",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    markers = re.findall(r"EDGEBOX: (.*)", done.stderr)
    assert markers[:3] == ["agent start", "enlisted abc123", "plan 8 scripts"], markers
    assert markers[-1] == "scripts done", markers
    verdicts = sorted(m for m in markers if m.startswith("script "))
    assert verdicts == sorted([
        "script ok degraded", "script fails failed", "script window-a passed",
        "script window-b passed", "script alone passed", "script same passed",
        "script same passed", "script sleeper timedout",
    ]), markers  # fmt: skip

    # Every result: fetched, started, outputs uploaded, done, in this order (no result file
    # where the script wrote none).
    for rid in ("r2", "r3", "r4", "r5", "r6", "r7", "r8"):
        assert calls_of(api, rid) == [c for c in CALLS if c != "result"], rid
    assert calls_of(api, "r1") == CALLS

    # The environment the script saw; NUL bytes do not cut the upload short.
    out = api.uploaded("r1", "stdout")
    assert out is not None
    work = agent.work / "agent" / "results" / "r1"
    assert out.decode().splitlines() == [
        "greeting=it's ok device=/dev/vdz id=r1",
        f"result_path={work}/result.yaml",
        f"output_dir={work}/output",
        f"cwd={work}/output",
        "nul::end",
    ]
    assert api.uploaded("r1", "result") == b"status: degraded\nresults:\n  answer: 42\n"
    assert done_of(api, "r1")["exit_code"] == 0

    # A failing script: its exit code and its stderr.
    assert done_of(api, "r2")["exit_code"] == 1 and done_of(api, "r2")["timed_out"] is False
    assert api.uploaded("r2", "stderr") == b"boom: disk on fire\n"
    assert api.uploaded("r2", "stdout") == b"checking the disk\n"

    # The sleeper: killed at its 2 s timeout, with the child it left behind.
    sleeper = done_of(api, "r8")
    assert sleeper["timed_out"] is True and sleeper["exit_code"] == 137, sleeper
    assert 2 <= sleeper["runtime"] < 4.5, sleeper
    assert api.uploaded("r8", "stdout") == b"sleeping\n"
    child = int((agent.work / "agent" / "results" / "r8" / "output" / "child").read_text())
    assert gone_or_zombie(child), f"the sleeper's child {child} outlived the timeout"

    # `any` overlap; `disabled` runs alone; `instance` never beside its own name.
    a, b, alone = window(api, "r3"), window(api, "r4"), window(api, "r5")
    same1, same2 = window(api, "r6"), window(api, "r7")
    assert overlap(a, b), (a, b)
    assert not overlap(alone, a) and not overlap(alone, b), (alone, a, b)
    assert not overlap(same1, same2), (same1, same2)
    for rid in ("r3", "r4"):
        assert 2 <= done_of(api, rid)["runtime"] < 3.5, done_of(api, rid)

    # Heartbeats: "running" while scripts ran, then "done" with a summary until poweroff.
    beats = [r["body"] for r in api.requests() if r["path"] == "/machine/v1/heartbeat"]
    states = [b["state"] for b in beats]
    assert "running" in states and states[-2:] == ["done", "done"], states
    assert beats[-1]["message"] == (
        "8 scripts: 5 passed, 1 failed, 1 timedout, 1 degraded, 0 skipped"
    )
    assert api.requests()[-1]["body"] == {"event": "poweroff"}
    print(f"plan of 8 ran in {elapsed:.1f}s")


def test_abort_while_running_kills_the_scripts(agent: AgentRun, serve: Any, tmp_path: Path) -> None:
    plan = write_plan(
        [Line("s1", "any", 0, "sleeper", "sleeper")], tmp_path / "plan", running_action="poweroff"
    )
    api = serve(plan, ["continue"])
    done = agent.run(
        api.url, TOKEN, Path("/sys"), Path("/proc"), timeout=60,
        EDGEBOX_PURPOSE="test", EDGEBOX_HEARTBEAT="1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    markers = re.findall(r"EDGEBOX: (.*)", done.stderr)
    assert markers[-1] == "abort: poweroff", markers
    assert calls_of(api, "s1") == ["script", "env", "start"]
    child = int((agent.work / "agent" / "results" / "s1" / "output" / "child").read_text())
    assert gone_or_zombie(child), "the aborted script's child is still running"
    assert api.requests()[-1]["body"] == {"event": "poweroff"}


def test_builtin_scripts_on_the_host(agent: AgentRun, serve: Any, tmp_path: Path) -> None:
    """The built-in tests that need no particular hardware, with the initramfs's busybox."""
    plan = write_plan(
        [
            Line("c", "disabled", 60, "cpu-stress", "cpu-stress",
                 (("EDGEBOX_PARAM_DURATION", "2"),)),
            Line("m", "disabled", 120, "memory-test", "memory-test",
                 (("EDGEBOX_PARAM_FRACTION", "0.01"),)),
            Line("n", "instance", 60, "network-throughput", "network-throughput",
                 (("EDGEBOX_PARAM_SIZE_MIB", "32"),)),
            Line("g", "any", 60, "gpu-presence", "gpu-presence"),
            Line("i", "any", 60, "edgebox-inventory", "edgebox-inventory"),
        ],
        tmp_path / "plan",
    )  # fmt: skip
    api = serve(plan, ["poweroff"])
    done = agent.run(
        api.url, TOKEN, Path("/sys"), Path("/proc"), timeout=180,
        EDGEBOX_PURPOSE="test", EDGEBOX_HEARTBEAT="5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for rid in "cmngi":
        assert done_of(api, rid)["exit_code"] == 0, (rid, api.uploaded(rid, "stderr"))
    results = {rid: (api.uploaded(rid, "result") or b"").decode() for rid in "cmng"}
    assert re.search(r"^status: passed\n.*  threads: \d+\n  rounds: [1-9]", results["c"], re.S)
    assert re.search(r"^status: passed\n.*  mib: [1-9]", results["m"], re.S)
    assert re.search(r"  bytes: 33554432\n", results["n"]), results["n"]
    assert re.search(r"  mb_per_s: [0-9.]+\n", results["n"]), results["n"]
    assert "gpus_seen: " in results["g"]
    print(results)
    inventory = parse_bundle((api.uploaded("i", "stdout") or b"").decode())
    assert inventory["cpu"]["threads"] == os.cpu_count()
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    if not inventory["memory"]["dimms"]:
        assert inventory["memory"]["total_mib"] == total_kib // 1024


def test_cpu_stress_fails_on_a_wrong_digest(agent: AgentRun, tmp_path: Path) -> None:
    """The check can fail: the same script expecting another digest reports every worker."""
    script = (BUILTIN / "cpu-stress").read_text()
    expected = re.search(r"^EXPECTED=([0-9a-f]{64})$", script, re.M)
    assert expected is not None
    wrong = tmp_path / "wrong-cpu-stress"
    wrong.write_text(script.replace(expected.group(1), "0" * 64))
    env = {"PATH": str(agent.applets()), "EDGEBOX_PARAM_DURATION": "1",
           "RESULT_PATH": str(tmp_path / "result.yaml"), "OUTPUT_DIR": str(tmp_path)}  # fmt: skip
    done = subprocess.run(
        [str(agent.applets() / "sh"), str(wrong)], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done
    threads = len(re.findall(r"^worker \d+: round 0 gave digest 080acf35", done.stderr, re.M))
    assert threads == int(subprocess.check_output([str(agent.applets() / "nproc")])), done.stderr
    assert (tmp_path / "result.yaml").read_text().startswith("status: failed\n")


# -- in a VM --------------------------------------------------------------------------------------

VM_TIMEOUT = 300  # seconds from QEMU start to its exit: boot ~20-30 s, the scripts ~60 s (TCG)
SPEC = VmSpec(
    name="cmsn",
    mac="52:54:00:eb:e1:01",
    disk_bytes=2 << 30,
    disk_serial="EBDISK0001",
    extra_disks=(("virtio-blk-pci", 3 << 30, "EBDISK0002"), ("nvme", 1 << 30, "EBNVME0001")),
    extra_nics=(("e1000", "52:54:00:eb:e1:02"),),
    bmc=True,
)
DISKS = {"vda": (2 << 30, "EBDISK0001"), "vdb": (3 << 30, "EBDISK0002"),
         "nvme0n1": (1 << 30, "EBNVME0001")}  # fmt: skip


def vm_plan(directory: Path) -> Plan:
    lines = [
        Line("inv", "any", 120, "edgebox-inventory", "edgebox-inventory"),
        Line(
            "cpu", "disabled", 120, "cpu-stress", "cpu-stress", (("EDGEBOX_PARAM_DURATION", "3"),)
        ),
        Line("mem", "disabled", 300, "memory-test", "memory-test"),
        # After a `disabled` one, both slots (two CPUs) are free: the windows run together.
        Line("win-a", "any", 60, "window-a", "window"),
        Line("win-b", "any", 60, "window-b", "window"),
    ]  # fmt: skip
    for disk in DISKS:
        device = (("EDGEBOX_DEVICE", f"/dev/{disk}"), ("EDGEBOX_PARAM_SIZE_MIB", "64"))
        lines.append(Line(f"read-{disk}", "instance", 120, "disk-read", "disk-read", device))
        lines.append(Line(f"smart-{disk}", "any", 60, "smart-check", "smart-check", device[:1]))
    lines += [
        Line("net", "instance", 120, "network-throughput", "network-throughput",
             (("EDGEBOX_PARAM_SIZE_MIB", "16"),)),
        Line("gpu", "any", 60, "gpu-presence", "gpu-presence"),
        Line("fails", "any", 60, "fails", "fails"),
        Line("sleeper", "any", 3, "sleeper", "sleeper"),
    ]  # fmt: skip
    return write_plan(lines, directory)


def check_vm_inventory(inventory: dict[str, Any]) -> None:
    """The parsed bundle against how QEMU was told to build the VM."""
    assert inventory["system"] == {
        "vendor": SPEC.vendor, "product": SPEC.product, "serial": SPEC.serial, "uuid": SPEC.uuid,
    }  # fmt: skip
    cpu = inventory["cpu"]
    assert (cpu["sockets"], cpu["cores"], cpu["threads"], cpu["arch"]) == (1, 2, 2, "x86_64")
    assert cpu["model"] and "sse2" in cpu["flags"], cpu
    # QEMU describes its RAM as one SMBIOS memory device per 16 GiB.
    [dimm] = inventory["memory"]["dimms"]
    assert dimm["size_mib"] == SPEC.memory_mib and dimm["manufacturer"] == "QEMU", dimm
    assert inventory["memory"]["total_mib"] == SPEC.memory_mib
    disks = {d["name"]: d for d in inventory["disks"]}
    assert set(disks) == set(DISKS), disks
    for name, (size, serial) in DISKS.items():
        disk = disks[name]
        assert (disk["size_bytes"], disk["serial"]) == (size, serial), disk
        assert disk["type"] == ("nvme" if name.startswith("nvme") else "virtual"), disk
        assert disk["logical_sector"] == 512, disk
        assert re.fullmatch(r"0000:00:[0-9a-f]{2}\.0", disk["pci_address"] or ""), disk
    assert disks["nvme0n1"]["model"] == "QEMU NVMe Ctrl", disks["nvme0n1"]
    assert disks["nvme0n1"]["firmware"], disks["nvme0n1"]
    nics = {n["mac"]: n for n in inventory["nics"]}
    assert set(nics) == {SPEC.mac, SPEC.extra_nics[0][1]}, nics
    assert nics[SPEC.mac]["driver"] == "virtio_net" and nics[SPEC.mac]["link"] is True
    assert nics[SPEC.extra_nics[0][1]]["driver"] == "e1000"
    pci = {d["address"]: d for d in inventory["pci"]}
    for nic in nics.values():
        assert pci[nic["pci_address"]]["kind"] == "network", (nic, pci)
    assert pci[disks["nvme0n1"]["pci_address"]]["kind"] == "storage"
    assert pci[disks["nvme0n1"]["pci_address"]]["driver"] == "nvme"
    # q35's standard VGA (1234:1111) is a display device, not a GPU.
    assert [d["vendor_id"] for d in pci.values() if d["class_id"].startswith("03")] == ["1234"]
    assert inventory["gpus"] == []
    assert inventory["firmware"]["type"] == "bios" and inventory["firmware"]["secure_boot"] is False
    assert inventory["firmware"]["vendor"], inventory["firmware"]
    assert inventory["bmc"] == {"present": True, "type": "ipmi"}


def test_vm_commissions_with_the_builtin_scripts(ephemeral: Ephemeral, tmp_path: Path) -> None:
    plan = vm_plan(tmp_path / "plan")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        start_dnsmasq(lab, net)
        api = start_api(lab, net, 5248, TOKEN, ["continue", "poweroff"], SPEC.name, plan)
        append = (
            f"console=ttyS0 edgebox.url={api.url} edgebox.token={TOKEN} "
            f"edgebox.purpose=commission edgebox.heartbeat=5 edgebox.mac={SPEC.mac}"
        )
        started = time.monotonic()
        vm = boot_vm(lab, net, SPEC, ephemeral, append, tmp_path)
        try:
            rc = vm.proc.wait(timeout=VM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"VM still running; console:\n{vm.output()[-4000:]}") from None
        took = time.monotonic() - started
        assert rc == 0, vm.output()[-4000:]
        bundle = (api.uploaded("inv", "stdout") or b"").decode()
        (tmp_path / "bundle.txt").write_text(bundle)
        markers = vm.markers()
        context = f"markers {markers}; console:\n{vm.output()[-3000:]}"
        assert markers[2:5] == ["agent start", "enlisted abc123", "plan 15 scripts"], context
        assert markers[-2:] == ["scripts done", "poweroff"], context
        verdicts = sorted(m for m in markers if m.startswith("script "))
        assert verdicts == sorted(
            ["script edgebox-inventory passed", "script cpu-stress passed",
             "script memory-test passed", *["script disk-read passed"] * 3,
             *["script smart-check skipped"] * 3, "script network-throughput passed",
             "script gpu-presence skipped", "script fails failed", "script sleeper timedout",
             "script window-a passed", "script window-b passed"]
        ), context  # fmt: skip

        assert done_of(api, "fails")["exit_code"] == 1
        assert api.uploaded("fails", "stderr") == b"boom: disk on fire\n"
        assert done_of(api, "sleeper")["timed_out"] is True
        assert overlap(window(api, "win-a"), window(api, "win-b"))
        results = {
            r["path"].split("/")[4]: (
                api.uploaded(r["path"].split("/")[4], "result") or b""
            ).decode()
            for r in api.requests()
            if r["path"].endswith("/done")
        }
        for disk in DISKS:
            assert "  bytes: 67108864\n" in results[f"read-{disk}"], results[f"read-{disk}"]
            smart = (api.uploaded(f"smart-{disk}", "stdout") or b"").decode()
            why = "smartctl is not in this environment" if disk[:4] == "nvme" else "virtio disk"
            assert why in smart, smart
        assert "  bytes: 16777216\n" in results["net"], results["net"]
        assert re.search(r"rounds: [1-9]", results["cpu"]), results["cpu"]
        assert "status: passed" in results["mem"], results["mem"]
        assert "gpus_seen: 0" in results["gpu"], results["gpu"]
        figures = {k: re.findall(r"(\w+_per_s): ([0-9.]+)", v) for k, v in results.items()}
        print(f"VM commissioned in {took:.0f}s; figures {figures}; bundle {tmp_path}/bundle.txt")
        check_vm_inventory(parse_bundle(bundle))


def test_vm_inventory_under_uefi_reads_secure_boot(ephemeral: Ephemeral, tmp_path: Path) -> None:
    """OVMF with Debian's empty variable store (no keys enrolled: Secure Boot off). The
    inventory loads the shipped efivarfs module, mounts it and reads the SecureBoot variable:
    false from the variable, not from the absence of UEFI."""
    spec = VmSpec(name="uefi", mac="52:54:00:eb:e1:11", uefi=True)
    plan = write_plan(
        [Line("inv", "any", 120, "edgebox-inventory", "edgebox-inventory")], tmp_path / "plan"
    )
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        start_dnsmasq(lab, net)
        api = start_api(lab, net, 5248, TOKEN, ["poweroff"], spec.name, plan)
        append = (
            f"console=ttyS0 edgebox.url={api.url} edgebox.token={TOKEN} "
            f"edgebox.purpose=commission edgebox.mac={spec.mac}"
        )
        vm = boot_vm(lab, net, spec, ephemeral, append, tmp_path)
        try:
            rc = vm.proc.wait(timeout=VM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"VM still running; console:\n{vm.output()[-4000:]}") from None
        assert rc == 0, vm.output()[-4000:]
        assert "script edgebox-inventory passed" in vm.markers(), vm.output()[-3000:]
        assert not [m for m in vm.markers() if m.startswith("warning")], vm.markers()
        bundle = (api.uploaded("inv", "stdout") or b"").decode()
        (tmp_path / "bundle.txt").write_text(bundle)
        firmware = parse_bundle(bundle)["firmware"]
        print(f"UEFI firmware {firmware}; bundle {tmp_path}/bundle.txt")
        assert (firmware["type"], firmware["secure_boot"]) == ("uefi", False), firmware
        assert "OVMF" in (firmware["vendor"] or ""), firmware
