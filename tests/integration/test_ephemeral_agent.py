"""The ephemeral environment: its build, its initramfs, its agent, and a VM that boots it.

packaging/ephemeral/build makes (or finds in its cache) the kernel and initramfs. The archive
is read back and checked on the host; its agent runs on the host with its own busybox against
fake /sys and /proc trees and a stand-in machine API on 127.0.0.1 (exact inventory, retries,
actions); and QEMU VMs boot it for real: the machine API's URL, a token and the boot MAC on the
kernel command line, dnsmasq giving the address and the stand-in API recording what the agent
sends, all inside lab namespaces. The VM oracles: the console's "EDGEBOX:" markers, the
recorded requests compared with how QEMU was told to build the VM, and QEMU exiting by itself
(-no-reboot) after the power-off.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ephemeral_initramfs import AgentRun, CpioEntry, read_newc, unpack, write_tree
from tests.integration.ephemeral_lab import (
    BUILD,
    DHCP_RANGE,
    Ephemeral,
    MachineApi,
    Vm,
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
VM_TIMEOUT = 120  # seconds from QEMU start to its exit; a boot takes ~15-25 s under TCG
REQUIRED_MODULES = {
    "e1000", "e1000e", "igb", "ixgbe", "virtio_net", "virtio_blk", "virtio_scsi", "nvme",
    "ahci", "sd_mod",
}  # fmt: skip


@pytest.fixture(scope="module")
def ephemeral() -> Ephemeral:
    skip_unless_lab("qemu-system-x86_64", "dnsmasq", "apt-get", "dpkg", "modinfo")
    return build_ephemeral()


@pytest.fixture(scope="module")
def entries(ephemeral: Ephemeral) -> dict[str, CpioEntry]:
    return {e.path: e for e in read_newc(ephemeral.initrd)}


# -- the build and the archive ------------------------------------------------------------------


def test_initramfs_is_complete_and_reproducible_in_form(
    ephemeral: Ephemeral, entries: dict[str, CpioEntry]
) -> None:
    paths = [e.path for e in read_newc(ephemeral.initrd)]
    assert paths == sorted(paths), "entries are not in sorted order"
    assert {(e.mtime, e.uid, e.gid) for e in entries.values()} == {(0, 0, 0)}
    console = entries["dev/console"]
    assert stat.S_ISCHR(console.mode) and console.rdev == (5, 1)
    for path in ("init", "usr/bin/edgebox-agent", "etc/edgebox/udhcpc-hook", "bin/busybox"):
        assert stat.S_IMODE(entries[path].mode) == 0o755, path
    for applet in ("bin/sh", "sbin/insmod", "sbin/udhcpc", "usr/bin/wget", "usr/bin/timeout"):
        assert entries[applet].is_symlink and entries[applet].data == b"/bin/busybox", applet
    # The manifest describes these very files.
    for name, info in ephemeral.manifest["files"].items():
        data = (ephemeral.directory / name).read_bytes()
        assert info == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}, name


def test_modules_load_after_their_dependencies(
    ephemeral: Ephemeral, entries: dict[str, CpioEntry], tmp_path: Path
) -> None:
    kver = ephemeral.manifest["kernel_version"]
    order = entries["etc/edgebox/modules"].data.decode().split()
    names = [Path(p).name.removesuffix(".ko").replace("-", "_") for p in order]
    assert names == ephemeral.manifest["modules"]
    assert set(names) >= REQUIRED_MODULES
    # Ask modinfo again, on the files as the archive holds them.
    for i, rel in enumerate(order):
        module = tmp_path / Path(rel).name
        module.write_bytes(entries[f"lib/modules/{kver}/{rel}"].data)
        depends = subprocess.run(
            ["modinfo", "-F", "depends", str(module)], capture_output=True, text=True, check=True
        ).stdout.strip()
        for dep in filter(None, depends.split(",")):
            assert dep.replace("-", "_") in names[:i], f"{names[i]} loads before its {dep}"


def test_build_is_cached_and_byte_identical(ephemeral: Ephemeral, tmp_path: Path) -> None:
    started = time.monotonic()
    again = build_ephemeral()
    assert again.directory == ephemeral.directory
    assert time.monotonic() - started < 30, "a cached build should only print its path"
    # A fresh build elsewhere (same .debs, no download) gives the very same bytes.
    (tmp_path / "debs").symlink_to(ephemeral.directory.parent / "debs")
    out = subprocess.run(
        [sys.executable, str(BUILD), "--cache-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    fresh = Path(out.stdout.strip())
    assert fresh.name == ephemeral.directory.name
    for name in ("vmlinuz", "initrd.gz", "manifest.json"):
        assert (fresh / name).read_bytes() == (ephemeral.directory / name).read_bytes(), name


# -- the agent on the host ----------------------------------------------------------------------

CPUINFO = "".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\n"
    f"model name\t: Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz\n"
    f"physical id\t: {n // 4}\ncpu cores\t: 2\n\n"
    for n in range(8)
)
AWKWARD = 'Acme "Rack" \\ Co\tLtd\x01'  # quote, backslash, tab, a control character
FAKE_SYSTEM: dict[str, str | bytes] = {
    "proc/cpuinfo": CPUINFO,
    "proc/meminfo": "MemTotal:       65843212 kB\nMemFree:        60000000 kB\n",
    "sys/class/dmi/id/sys_vendor": AWKWARD + "\n",
    "sys/class/dmi/id/product_name": "PowerEdge R640\n",
    "sys/class/dmi/id/product_serial": "7XK4CN2\n",
    "sys/class/dmi/id/product_uuid": "4c4c4544-0058-4b10-8034-b7c04f434e32\n",
    "sys/block/loop0/size": "0\n",
    "sys/block/nvme0n1/size": "1875385008\n",
    "sys/block/nvme0n1/queue/rotational": "0\n",
    "sys/block/nvme0n1/device/model": "SAMSUNG MZQL2960HCJR-00A07              \n",
    "sys/block/nvme0n1/device/serial": "S64FNE0R801234      \n",
    "sys/block/sda/size": "3907029168\n",
    "sys/block/sda/queue/rotational": "1\n",
    "sys/block/sda/device/model": "ST2000NM0055-1V4\n",
    "sys/block/sda/device/vpd_pg80": b"\x00\x80\x00\x14" + b"            ZC20ABCD",
    "sys/class/net/lo/address": "00:00:00:00:00:00\n",
    "sys/class/net/eno1/address": "b0:26:28:aa:bb:01\n",
    "sys/class/net/eno1/carrier": "1\n",
    "sys/class/net/eno1/speed": "10000\n",
    "sys/class/net/eno1/device/driver": "-> ../../../bus/pci/drivers/ixgbe",
    "sys/class/net/eno2/address": "b0:26:28:aa:bb:02\n",
    "sys/class/net/eno2/speed": "-1\n",
    "sys/class/net/eno2/device/driver": "-> ../../../bus/pci/drivers/ixgbe",
}
EXPECTED_INVENTORY = {
    "dmi": {
        "vendor": AWKWARD,
        "product": "PowerEdge R640",
        "serial": "7XK4CN2",
        "uuid": "4c4c4544-0058-4b10-8034-b7c04f434e32",
    },
    "cpu": {
        "model": "Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz",
        "sockets": 2,
        "cores": 4,
        "threads": 8,
    },
    "memory_mib": 65843212 // 1024,
    "disks": [
        {
            "name": "nvme0n1",
            "size_bytes": 1875385008 * 512,
            "model": "SAMSUNG MZQL2960HCJR-00A07",
            "serial": "S64FNE0R801234",
            "rotational": False,
        },
        {
            "name": "sda",
            "size_bytes": 3907029168 * 512,
            "model": "ST2000NM0055-1V4",
            "serial": "ZC20ABCD",
            "rotational": True,
        },
    ],
    "nics": [
        {"name": "eno1", "mac": "b0:26:28:aa:bb:01", "driver": "ixgbe", "link": True,
         "speed_mbps": 10000},
        {"name": "eno2", "mac": "b0:26:28:aa:bb:02", "driver": "ixgbe", "link": False,
         "speed_mbps": None},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def agent(entries: dict[str, CpioEntry], tmp_path_factory: pytest.TempPathFactory) -> AgentRun:
    root = tmp_path_factory.mktemp("initramfs")
    unpack(list(entries.values()), root)
    return AgentRun(root, tmp_path_factory.mktemp("agent"))


@pytest.fixture
def local_api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MachineApi]:
    """The stand-in API on 127.0.0.1 (loopback only). Its heartbeat answers: the indirect
    parameter if there is one, else "poweroff"."""
    actions: list[str] = getattr(request, "param", ["poweroff"])
    record = tmp_path / "api.jsonl"
    argv = api_argv("127.0.0.1", 0, TOKEN, actions, record)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield api_started(proc, "127.0.0.1", record)
    finally:
        stop_process(proc)


@pytest.fixture
def fake_system(tmp_path: Path) -> Path:
    write_tree(tmp_path / "fake", FAKE_SYSTEM)
    return tmp_path / "fake"


@pytest.mark.parametrize("local_api", [["continue", "poweroff"]], indirect=True)
def test_agent_sends_the_exact_inventory(
    agent: AgentRun, local_api: MachineApi, fake_system: Path
) -> None:
    done = agent.run(
        local_api.url, TOKEN, fake_system / "sys", fake_system / "proc",
        EDGEBOX_BOOT_MAC="b0:26:28:aa:bb:01", EDGEBOX_HEARTBEAT="1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.findall(r"EDGEBOX: (.*)", done.stderr) == ["agent start", "enlisted abc123"]
    requests = local_api.requests()
    assert [r["path"].rsplit("/", 1)[1] for r in requests] == [
        "enlist", "heartbeat", "heartbeat", "status",
    ]  # fmt: skip
    assert requests[0]["body"] == {
        "boot_mac": "b0:26:28:aa:bb:01",
        "purpose": "enlist",
        "inventory": EXPECTED_INVENTORY,
    }
    assert requests[0]["user_agent"] == "edgebox-agent"
    assert requests[-1]["body"] == {"event": "poweroff"}


def test_agent_gives_up_after_its_tries(
    agent: AgentRun, local_api: MachineApi, fake_system: Path
) -> None:
    started = time.monotonic()
    done = agent.run(
        local_api.url, "wrong-token", fake_system / "sys", fake_system / "proc",
        EDGEBOX_TRIES="3",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    markers = re.findall(r"EDGEBOX: (.*)", done.stderr)
    assert markers[0] == "agent start"
    assert markers[1].startswith("error /machine/v1/enlist: ") and "401" in markers[1], markers
    assert "gave up after 3 tries" in markers[1]
    # Three enlist tries (2 s, then 4 s apart), then one status call, all refused.
    paths = [r["path"] for r in local_api.requests()]
    assert paths == ["/machine/v1/enlist"] * 3 + ["/machine/v1/status"], paths
    assert 6 <= elapsed < 20, elapsed


@pytest.mark.parametrize("local_api", [["reboot"]], indirect=True)
def test_agent_reboots_when_told(agent: AgentRun, local_api: MachineApi, fake_system: Path) -> None:
    done = agent.run(local_api.url, TOKEN, fake_system / "sys", fake_system / "proc")
    assert done.returncode == 3, done.stderr
    assert local_api.requests()[-1]["body"] == {"event": "reboot"}


# -- VMs ----------------------------------------------------------------------------------------


def wait_exit(vm: Vm, timeout: float) -> int:
    try:
        return vm.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"VM {vm.spec.name} still running after {timeout}s; console:\n{vm.output()[-4000:]}"
        ) from None


def kernel_memory_kib(console: str) -> tuple[int, int]:
    """(RAM the kernel found, what it reserved) in KiB, from its boot line on the console."""
    line = re.search(r"Memory: \d+K/(\d+)K available \(.*, (\d+)K reserved", console)
    assert line, "no 'Memory:' line on the console"
    return int(line.group(1)), int(line.group(2))


def check_markers(vm: Vm) -> None:
    """init, network up, agent start, enlisted, poweroff: in this order and nothing else (no
    error, no module that failed to load)."""
    markers = vm.markers()
    context = f"markers {markers}; console:\n{vm.output()[-4000:]}"
    assert markers[0] == "init", context
    assert markers[1].startswith("network up "), context
    ip = ipaddress.IPv4Address(markers[1].removeprefix("network up "))
    low, high = (ipaddress.IPv4Address(a) for a in DHCP_RANGE)
    assert low <= ip <= high, context
    assert markers[2:] == ["agent start", "enlisted abc123", "poweroff"], context


def check_inventory(vm: Vm, api: MachineApi) -> None:
    spec = vm.spec
    enlist = api.requests()[0]
    assert enlist["path"] == "/machine/v1/enlist", enlist
    body = enlist["body"]
    assert body["boot_mac"] == spec.mac
    assert body["purpose"] == "enlist"
    inv = body["inventory"]
    assert inv["dmi"] == {
        "vendor": spec.vendor, "product": spec.product, "serial": spec.serial, "uuid": spec.uuid,
    }  # fmt: skip
    assert inv["cpu"]["model"], inv["cpu"]
    assert (inv["cpu"]["sockets"], inv["cpu"]["cores"], inv["cpu"]["threads"]) == (1, 2, 2)
    # memory_mib is MemTotal: the pages the kernel manages. Its boot line "Memory: F/PK
    # available (..., RK reserved, ...)" gives P, the RAM it found, and P - R, what it managed
    # then; it frees the initrd and its init code later, so MemTotal ends between the two
    # (455 MiB of 511 here, -m 512).
    found, reserved = kernel_memory_kib(vm.output())
    low, high = (found - reserved) // 1024, found // 1024
    assert low <= inv["memory_mib"] <= high, (low, inv["memory_mib"], high)
    assert inv["memory_mib"] >= 0.85 * spec.memory_mib, inv["memory_mib"]
    # q35's AHCI controller has no disks attached: the only disk is ours.
    [disk] = inv["disks"]
    assert disk == {
        "name": "vda", "size_bytes": spec.disk_bytes, "model": "", "serial": spec.disk_serial,
        "rotational": disk["rotational"],
    }  # fmt: skip
    assert isinstance(disk["rotational"], bool)
    driver = {"virtio-net-pci": "virtio_net", "e1000": "e1000"}[spec.nic]
    [nic] = inv["nics"]
    assert nic["mac"] == spec.mac and nic["driver"] == driver and nic["link"] is True, nic
    # QEMU's e1000 reports gigabit; virtio-net reports no speed unless told one.
    assert nic["speed_mbps"] == (1000 if spec.nic == "e1000" else None), nic


def check_calls(api: MachineApi, heartbeats: int) -> None:
    requests = api.requests()
    paths = [r["path"] for r in requests]
    assert paths == [
        "/machine/v1/enlist",
        *["/machine/v1/heartbeat"] * heartbeats,
        "/machine/v1/status",
    ], paths
    for r in requests:
        assert r["authorization"] == f"Bearer {TOKEN}", r
        assert r["content_type"] == "application/json", r
        assert r["code"] == 200, r
    for r in requests[1:-1]:
        assert r["body"]["state"] == "idle" and isinstance(r["body"]["message"], str), r
    assert requests[-1]["body"] == {"event": "poweroff"}


@pytest.mark.parametrize(
    ("nic", "actions", "mac_given"),
    [
        # virtio-net, booted with edgebox.mac as iPXE passes it; the server first says
        # "continue", so the agent keeps heartbeating (every 2 s here) until told to power off.
        ("virtio-net-pci", ["continue", "poweroff"], True),
        # e1000, whose link Linux reports ~3.5 s later (LAB.md); no edgebox.mac, so /init
        # waits for the first NIC with carrier. Told to power off at once.
        ("e1000", ["poweroff"], False),
    ],
)
def test_vm_enlists_and_powers_off(
    ephemeral: Ephemeral, nic: str, actions: list[str], mac_given: bool, tmp_path: Path
) -> None:
    spec = VmSpec(name=nic.split("-", maxsplit=1)[0], mac="52:54:00:eb:e0:01", nic=nic)
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        start_dnsmasq(lab, net)
        api = start_api(lab, net, 5248, TOKEN, actions, spec.name)
        append = (
            f"console=ttyS0 edgebox.url={api.url} edgebox.token={TOKEN} "
            f"edgebox.purpose=enlist edgebox.heartbeat=2"
        )
        if mac_given:
            append += f" edgebox.mac={spec.mac}"
        started = time.monotonic()
        vm = boot_vm(lab, net, spec, ephemeral, append, tmp_path)
        rc = wait_exit(vm, VM_TIMEOUT)
        print(f"{spec.name}: QEMU exited {rc} after {time.monotonic() - started:.1f}s")
        assert rc == 0, vm.output()[-4000:]
        check_markers(vm)
        check_inventory(vm, api)
        check_calls(api, heartbeats=len(actions))
        (tmp_path / "requests.json").write_text(json.dumps(api.requests(), indent=2))


def test_vm_powers_off_on_a_fatal_error(ephemeral: Ephemeral, tmp_path: Path) -> None:
    """No token on the command line: /init says so and powers off (no shell, no hang)."""
    spec = VmSpec(name="fatal", mac="52:54:00:eb:e0:02")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        append = "console=ttyS0 edgebox.url=http://10.231.0.1:5248 edgebox.purpose=enlist"
        vm = boot_vm(lab, net, spec, ephemeral, append, tmp_path)
        assert wait_exit(vm, VM_TIMEOUT) == 0, vm.output()[-4000:]
        assert vm.markers() == ["init", "error edgebox.token= is missing", "poweroff"], vm.output()
