"""Deploy and release end to end in the virtual lab: real firmware, the real agent, the lab power
driver, a real `edgebox serve`, and the tiny image from scripts/build-image.

VMs start switched off with the lab driver (QMP) as their BMC and are made Ready through the
API (mark-broken, mark-fixed: commissioning has its own e2e test). The tiny image is built,
signed with a key made here, trusted in `images.trusted_keys` and imported. Shown:
- two VMs allocated and deployed at once: each PXE-boots the ephemeral environment, its agent
  writes and verifies the image and the seed, the VM reboots from its own disk into the tiny
  OS, which fetches its user-data from edgebox (EDGEBOX-DEPLOYED-OK and the user-data's first
  line on the console) and the machine is Deployed; each disk holds the image (byte for byte
  outside the CIDATA partition, the same files inside it plus the seed);
- released with a quick erase, each network-boots again, erases, powers off and is Ready, with
  no partition table or file system signature left on its disk;
- an image whose stored file was damaged after import is refused with a clear error before
  anything happens: the VM never ran and its disk is untouched;
- slow, opt-in (EDGEBOX_SLOW_DEBIAN=1): the Debian 12 image deploys and its stock cloud-init
  applies the user-data, which writes a file and prints a marker on the console.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edgebox.lab.topology import SERVER_IP
from edgebox.lab.vm import VmSpec, disk_path
from edgebox.services.image_signing import write_key_pair
from tests.integration.daemon import Daemon
from tests.integration.test_agent_deploy_vm import fat_files, first_partition
from tests.integration.test_boot_e2e import boot_files, boot_server  # noqa: F401 - a fixture
from tests.integration.test_commissioning_e2e import call, start_vm, wait_status
from tests.lab import skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
TOOLS = ("qemu-system-x86_64", "ethtool", "zstd", "mcopy", "mdir", "blkid", "syslinux", "objcopy")
USER_DATA = "#cloud-config\n# deployed by test_deploy_e2e\n"


class Built:
    """A signed image directory from scripts/build-image, its disk decompressed, and the key."""

    def __init__(self, directory: Path, public_key: Path, raw: Path) -> None:
        self.directory = directory
        self.public_key = public_key
        self.raw = raw
        self.manifest = json.loads((directory / "manifest.json").read_text())["manifest"]

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def disk_sha256(self) -> str:
        [disk] = [f for f in self.manifest["files"] if f["role"] == "disk"]
        return str(disk["sha256"])


def build_image(kind: str, work: Path, timeout: float, decompress: bool = True) -> Built:
    work.mkdir(parents=True, exist_ok=True)
    key = write_key_pair(work / "builder")
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-image"), f"--{kind}", "--key", str(key.private_path),
         "--out", str(work / "out")],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    directory = Path(built.stdout.strip().splitlines()[-1])
    [disk] = directory.glob("disk.raw*")
    raw = work / "disk.raw"
    if decompress:
        subprocess.run(["zstd", "-dqf", str(disk), "-o", str(raw)], check=True)
    return Built(directory, key.public_path, raw)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Built:
    skip_unless_lab(*TOOLS)
    return build_image("tiny", tmp_path_factory.mktemp("tiny"), 600)


def request(daemon: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """An API call that may fail: (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {daemon.admin_token}", "Content-Type": "application/json"}
    req = urllib.request.Request(daemon.api_url + "/api/v1" + path, data=data, method=method,
                                 headers=headers)  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def import_image(daemon: Daemon, image: Built, timeout: float = 300) -> dict[str, Any]:
    record = call(daemon, "POST", "/images", {"path": str(image.directory)})
    deadline = time.monotonic() + timeout
    while record["state"] != "ready":
        assert record["state"] == "importing" and time.monotonic() < deadline, record
        time.sleep(1)
        record = call(daemon, "GET", f"/images/{record['id']}")
    return dict(record)


def ready_machine(daemon: Daemon, spec: VmSpec) -> str:
    """A machine for the VM, with the lab driver as its BMC, made Ready by hand."""
    machine = call(daemon, "POST", "/machines", {"mac": spec.mac})
    system_id = str(machine["system_id"])
    call(daemon, "PUT", f"/machines/{system_id}/bmc",
         {"driver": "lab", "address": str(spec.qmp_socket)})  # fmt: skip
    call(daemon, "POST", f"/machines/{system_id}/actions/mark-broken", {})
    fixed = call(daemon, "POST", f"/machines/{system_id}/actions/mark-fixed", {})
    assert fixed["status"] == "ready", fixed
    return system_id


def lab_vm(name: str, mac: str, work: Path, memory_mib: int = 512, disk_gib: int = 2) -> VmSpec:
    return VmSpec(name, mac, memory_mib=memory_mib, disk_gib=disk_gib,
                  qmp_socket=work / f"{name}.qmp", powered_off=True)  # fmt: skip


def wait_console(console: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = console.read_text(errors="replace")
        if text in seen:
            return seen
        time.sleep(1)
    raise AssertionError(f"{text!r} not on {console.name} after {timeout}s:\n{seen[-4000:]}")


def check_disk(disk: Path, image: Built) -> None:
    """The disk holds the image: byte for byte outside its CIDATA partition, where the agent
    wrote the seed; inside, the image's files plus meta-data and user-data."""
    raw = image.raw.read_bytes()
    with disk.open("rb") as f:
        written = f.read(len(raw))
    start, size = first_partition(raw)
    as_image = written[:start] + raw[start : start + size] + written[start + size :]
    assert hashlib.sha256(as_image).digest() == hashlib.sha256(raw).digest()
    on_disk, in_image = fat_files(disk, start), fat_files(image.raw, start)
    assert set(on_disk) == set(in_image) | {"meta-data", "user-data"}, sorted(on_disk)
    assert all(on_disk[name] == data for name, data in in_image.items())
    assert f"seedfrom: http://{SERVER_IP}:5248/cloud-init/".encode() in on_disk["meta-data"]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blkid(disk: Path, offset: int = 0) -> str:
    probe = subprocess.run(["blkid", "-p", "-O", str(offset), str(disk)], capture_output=True,
                           text=True, check=False)  # fmt: skip
    return probe.stdout.strip()


def events_of(daemon: Daemon, system_id: str) -> list[dict[str, Any]]:
    return list(call(daemon, "GET", f"/events?machine={system_id}&limit=500")["items"])


@pytest.mark.timeout(1200)
def test_two_vms_deploy_at_once_boot_their_disks_and_release_with_quick_erase(
    tmp_path: Path,
    boot_files: tuple[Path, Path],  # noqa: F811
    tiny: Built,
) -> None:
    loaders, ephemeral = boot_files
    specs = [lab_vm("dpa", "52:54:00:d0:00:01", tmp_path), lab_vm("dpb", "52:54:00:d0:00:02",
             tmp_path)]  # fmt: skip
    more = {"images": {"trusted_keys": [str(tiny.public_key)]}}
    with boot_server(tmp_path, loaders, ephemeral, more_config=more) as (daemon, topology):
        procs: list[subprocess.Popen[bytes]] = []
        try:
            consoles = {}
            for spec in specs:
                proc, consoles[spec.name] = start_vm(topology, spec, tmp_path)
                procs.append(proc)
            ids = {spec.name: ready_machine(daemon, spec) for spec in specs}
            image = import_image(daemon, tiny)
            for system_id in ids.values():
                call(daemon, "POST", f"/machines/{system_id}/actions/allocate", {})
            started = time.monotonic()
            bulk = call(daemon, "POST", "/deploy", {"machines": list(ids.values()),
                        "image": tiny.name, "user_data": USER_DATA})  # fmt: skip
            print("deploy answer:", json.dumps(bulk))
            for name, system_id in ids.items():
                machine = wait_status(daemon, system_id, {"deployed", "failed_deployment"},
                                      list(consoles.values()), 600)  # fmt: skip
                assert machine["status"] == "deployed", machine
                print(f"{name}: deployed after {time.monotonic() - started:.0f}s")
            windows: list[tuple[str, str]] = []
            for spec in specs:
                text = wait_console(consoles[spec.name], "EDGEBOX-USER-DATA: #cloud-config", 60)
                assert "EDGEBOX: deploy written vda sha256=" + tiny.disk_sha256 in text
                assert "EDGEBOX-DEPLOYED-OK firmware=bios" in text
                check_disk(disk_path(spec, tmp_path), tiny)
                deployment = call(daemon, "GET", f"/machines/{ids[spec.name]}/deployment")
                print(f"{spec.name}: deployment {json.dumps(deployment)[:1500]}")
                assert deployment["result"] == {"disk": "vda", "sha256": tiny.disk_sha256}
                assert "seed: meta-data written into vda1" in deployment["log"]
                windows.append((deployment["started_at"], deployment["finished_at"]))
            assert image["name"] == tiny.name
            # At once: each started writing before the other had finished.
            assert windows[0][0] < windows[1][1] and windows[1][0] < windows[0][1], windows

            # Release both with a quick erase: each boots the ephemeral environment again.
            for system_id in ids.values():
                call(daemon, "POST", f"/machines/{system_id}/actions/release", {"erase": "quick"})
            for system_id in ids.values():
                machine = wait_status(daemon, system_id, {"ready", "failed_disk_erasing"},
                                      list(consoles.values()), 400)  # fmt: skip
                assert machine["status"] == "ready", machine
            for spec in specs:
                text = consoles[spec.name].read_text(errors="replace")
                assert "EDGEBOX: erase vda quick" in text and "EDGEBOX: erase done" in text
                disk = disk_path(spec, tmp_path)
                assert blkid(disk) == "" and blkid(disk, MIB) == "", spec.name
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(10)


@pytest.mark.timeout(600)
def test_a_damaged_image_is_refused_before_any_machine_is_touched(
    tmp_path: Path,
    boot_files: tuple[Path, Path],  # noqa: F811
    tiny: Built,
) -> None:
    loaders, ephemeral = boot_files
    spec = lab_vm("dpbad", "52:54:00:d0:00:03", tmp_path)
    more = {"images": {"trusted_keys": [str(tiny.public_key)]}}
    with boot_server(tmp_path, loaders, ephemeral, more_config=more) as (daemon, topology):
        proc, console = start_vm(topology, spec, tmp_path)
        try:
            system_id = ready_machine(daemon, spec)
            import_image(daemon, tiny)
            # Bit rot, or a person editing the cache: one byte of the stored file flips.
            cache = tmp_path / "data" / "images"
            [stored] = [p for p in cache.rglob("*")
                        if p.is_file() and sha256_of(p) == tiny.disk_sha256]  # fmt: skip
            with stored.open("r+b") as f:
                f.seek(stored.stat().st_size // 2)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0x40]))
            call(daemon, "POST", f"/machines/{system_id}/actions/allocate", {})
            status, answer = request(daemon, "POST", f"/machines/{system_id}/actions/deploy",
                                     {"image": tiny.name, "user_data": USER_DATA})  # fmt: skip
            print("refusal:", status, answer)
            assert status == 409, answer
            assert "damaged in the cache" in json.dumps(answer), answer
            time.sleep(5)  # anything that was going to happen would have started
            machine = call(daemon, "GET", f"/machines/{system_id}")
            assert machine["status"] == "allocated", machine
            power = [t for t in (e["type"] for e in events_of(daemon, system_id))
                     if t.startswith("power.") and t != "power.bmc_set"]  # fmt: skip
            assert power == [], power  # no power operation was even queued
            output = console.read_text(errors="replace")
            assert "SeaBIOS" not in output and "EDGEBOX" not in output, output  # never ran
            disk = disk_path(spec, tmp_path)
            assert disk.stat().st_blocks == 0  # still sparse: nothing was ever written
            with disk.open("rb") as f:
                assert f.read(MIB) == bytes(MIB)
            image = call(daemon, "GET", f"/images/{tiny.name}")
            assert image["state"] != "ready", image  # never offered again until re-imported
        finally:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(3600)
def test_debian_12_deploys_and_stock_cloud_init_applies_the_user_data(
    tmp_path: Path,
    boot_files: tuple[Path, Path],  # noqa: F811
) -> None:
    """debootstrap (minutes, Debian's mirror), then a deploy and a full Debian boot under TCG
    (several minutes more): opt-in with EDGEBOX_SLOW_DEBIAN=1."""
    if os.environ.get("EDGEBOX_SLOW_DEBIAN") != "1":
        pytest.skip("builds Debian 12 with debootstrap and boots it under TCG (10+ minutes): "
                    "set EDGEBOX_SLOW_DEBIAN=1 to run it")  # fmt: skip
    skip_unless_lab(*TOOLS, "debootstrap", "mkfs.ext4")
    loaders, ephemeral = boot_files
    debian = build_image("debian", tmp_path / "debian", 2400, decompress=False)
    spec = lab_vm("dpdeb", "52:54:00:d0:00:04", tmp_path, memory_mib=1024, disk_gib=4)
    marker = "EDGEBOX-CLOUD-INIT-OK"
    user_data = (
        "#cloud-config\n"
        "write_files:\n"
        "  - path: /root/edgebox-was-here\n"
        "    content: written by cloud-init from edgebox's user-data\n"
        "runcmd:\n"
        f"  - [sh, -c, 'echo \"{marker} $(cat /root/edgebox-was-here)\" >/dev/ttyS0']\n"
    )
    more = {"images": {"trusted_keys": [str(debian.public_key)]}}
    with boot_server(tmp_path, loaders, ephemeral, more_config=more) as (daemon, topology):
        proc, console = start_vm(topology, spec, tmp_path)
        try:
            system_id = ready_machine(daemon, spec)
            import_image(daemon, debian, timeout=900)
            call(daemon, "POST", f"/machines/{system_id}/actions/allocate", {})
            call(daemon, "POST", f"/machines/{system_id}/actions/deploy",
                 {"image": debian.name, "user_data": user_data})  # fmt: skip
            machine = wait_status(daemon, system_id, {"deployed", "failed_deployment"},
                                  [console], 1800)  # fmt: skip
            assert machine["status"] == "deployed", machine
            # The marker line carries the file's content: the file was written first.
            text = wait_console(console, f"{marker} written by cloud-init from edgebox", 900)
            assert "EDGEBOX: deploy written vda sha256=" + debian.disk_sha256 in text
        finally:
            proc.kill()
            proc.wait(10)
