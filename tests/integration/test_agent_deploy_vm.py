"""The agent's deploy and erase in a VM: the ephemeral kernel, a real virtio disk, the tiny image.

The VM boots the built kernel and initramfs directly with `edgebox.purpose=deploy` (or erase),
in lab namespaces with dnsmasq for DHCP and the stand-in machine API (ephemeral_api.py) handing
out the plan and serving the tiny image that scripts/build-image makes (zstd, the default, so
the initramfs's zstd is used) and the user-data. Shown:
- the agent picks vda, writes the image, verifies it, writes the seed into the CIDATA
  partition, reports and reboots; the disk then holds exactly the image outside that
  partition, the same files inside it, and the seed's meta-data;
- that disk boots on its own (SeaBIOS, no kernel given to QEMU): the tiny image's /init reads
  `seedfrom`, fetches the user-data from the stand-in and prints EDGEBOX-DEPLOYED-OK with the
  user-data's first line;
- a quick erase of every disk (`disks=` empty) leaves no partition table or file system
  signature on either of the VM's two disks.
"""

from __future__ import annotations

import json
import struct
import subprocess
import time
from pathlib import Path

import pytest

from edgebox.domain.image_manifest import parse_envelope
from edgebox.services.image_signing import write_key_pair
from tests.integration.ephemeral_lab import (
    Ephemeral,
    MachineApi,
    VmSpec,
    boot_vm,
    build_ephemeral,
    start_api,
    start_dnsmasq,
)
from tests.lab import Lab, TwoHosts, skip_unless_lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t0k"
SYSTEM_ID = "abc123"  # what the stand-in's enlist answers
MIB = 1 << 20
VM_TIMEOUT = 240  # seconds for one QEMU run (boot + deploy or erase) under TCG
USER_DATA = "#cloud-config\n# written by test_agent_deploy_vm\n"
TOOLS = ("qemu-system-x86_64", "dnsmasq", "zstd", "mcopy", "mdir", "fsck.vfat", "blkid",
         "sfdisk", "mkfs.vfat", "syslinux", "objcopy")  # fmt: skip


class TinyImage:
    """scripts/build-image --tiny's output: the signed directory and the decompressed disk."""

    def __init__(self, directory: Path, raw: Path) -> None:
        self.directory = directory
        self.raw = raw
        self.manifest = parse_envelope((directory / "manifest.json").read_bytes()).manifest

    @property
    def disk_file(self) -> Path:
        return self.directory / self.manifest.disk.name


@pytest.fixture(scope="module")
def ephemeral() -> Ephemeral:
    skip_unless_lab(*TOOLS)
    return build_ephemeral()


@pytest.fixture(scope="module")
def tiny(ephemeral: Ephemeral, tmp_path_factory: pytest.TempPathFactory) -> TinyImage:
    work = tmp_path_factory.mktemp("tiny")
    key = write_key_pair(work / "builder")
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-image"), "--tiny", "--key", str(key.private_path),
         "--out", str(work / "out")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    image = TinyImage(Path(built.stdout.strip().splitlines()[-1]), work / "disk.raw")
    assert image.manifest.compression == "zstd"
    subprocess.run(["zstd", "-dqf", str(image.disk_file), "-o", str(image.raw)], check=True)
    return image


def wait_exit(proc: subprocess.Popen[bytes], console: Path, timeout: float = VM_TIMEOUT) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        tail = console.read_text(errors="replace")[-4000:]
        raise AssertionError(f"QEMU still running after {timeout}s; console:\n{tail}") from None


def markers(console: Path) -> list[str]:
    text = console.read_text(errors="replace")
    return [line.split("EDGEBOX: ", 1)[1].strip() for line in text.splitlines()
            if "EDGEBOX: " in line]  # fmt: skip


def first_partition(disk: bytes) -> tuple[int, int]:
    """(start, size) in bytes of MBR partition entry 1."""
    start, sectors = struct.unpack_from("<II", disk, 0x1BE + 8)
    return start * 512, sectors * 512


def fat_files(image: Path, offset: int) -> dict[str, bytes]:
    """Every file in the FAT file system at `offset` of `image`, by path, read with mtools."""
    where = f"{image}@@{offset}"
    listing = subprocess.run(["mdir", "-i", where, "-/", "-b", "::"], capture_output=True,
                             text=True, check=True)  # fmt: skip
    files = {}
    for path in listing.stdout.split():
        if path.endswith("/"):
            continue
        content = subprocess.run(["mcopy", "-n", "-i", where, path, "-"], capture_output=True,
                                 check=True)  # fmt: skip
        files[path.removeprefix("::").lstrip("/")] = content.stdout
    return files


def stand_in(lab: Lab, net: TwoHosts, name: str, options: list[str]) -> MachineApi:
    uploads = lab.tmpdir / f"{name}-uploads"
    uploads.mkdir()
    api = start_api(lab, net, 5248, TOKEN, ["poweroff"], name,
                    extra_args=["--uploads", str(uploads), *options])  # fmt: skip
    api.uploads = uploads
    return api


def body_of(api: MachineApi, path: str) -> dict[str, object]:
    [body] = [r["body"] for r in api.requests() if r["path"] == path]
    return dict(body)


def test_vm_deploys_the_tiny_image_and_boots_it_with_its_seed(
    ephemeral: Ephemeral, tiny: TinyImage, tmp_path: Path
) -> None:
    spec = VmSpec(name="deploy", mac="52:54:00:eb:d0:01", cpus=1, disk_bytes=1 << 30)
    image = tiny.manifest.disk
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        start_dnsmasq(lab, net)
        plan, user_data = lab.tmpdir / "deploy.plan", lab.tmpdir / "user-data"
        user_data.write_text(USER_DATA)
        api = stand_in(lab, net, spec.name, [
            "--deploy-plan", str(plan), "--image", str(tiny.disk_file), "--done-action", "reboot",
            "--user-data", str(user_data),
        ])  # fmt: skip
        seed_url = f"{api.url}/cloud-init/{SYSTEM_ID}/"
        plan.write_text(
            f"image_url={api.url}/images/{image.sha256}\nsha256={image.sha256}\n"
            f"size={image.size}\ncompression=zstd\nkind=raw\ndisk=\nseed_url={seed_url}\n"
            f"system_id={SYSTEM_ID}\nhostname=tiny-1\nfuture_key=ignored\n"
        )
        append = (f"console=ttyS0 edgebox.url={api.url} edgebox.token={TOKEN} "
                  f"edgebox.purpose=deploy edgebox.mac={spec.mac}")  # fmt: skip
        started = time.monotonic()
        vm = boot_vm(lab, net, spec, ephemeral, append, tmp_path)
        assert wait_exit(vm.proc, vm.console) == 0  # -no-reboot: the reboot ends QEMU
        print(f"deploy: QEMU exited after {time.monotonic() - started:.1f}s")

        # What the agent said and reported.
        seen = markers(vm.console)
        context = f"{seen}\n{vm.output()[-4000:]}"
        deployed = seen[seen.index(f"enlisted {SYSTEM_ID}") + 1 :]
        assert deployed == [
            f"deploy plan vda zstd {image.size} bytes", f"deploy written vda sha256={image.sha256}",
            "deploy seed written", "deploy done", "reboot",
        ], context  # fmt: skip
        done = body_of(api, "/machine/v1/deploy/done")
        # The disk's serial too: edgebox checks the disk written against its inventory.
        assert done == {
            "ok": True,
            "disk": "vda",
            "sha256": image.sha256,
            "serial": spec.disk_serial,
        }
        steps = [r["body"]["step"] for r in api.requests()
                 if r["path"] == "/machine/v1/deploy/progress"]  # fmt: skip
        assert set(steps) == {"download", "write", "verify", "seed"}, steps
        write = next(r["body"] for r in api.requests() if r["path"] ==
                     "/machine/v1/deploy/progress" and r["body"]["step"] == "write")  # fmt: skip
        assert write["done"] == write["total"] == tiny.raw.stat().st_size
        assert api.uploads is not None
        log = (api.uploads / "deploy.log").read_text()
        assert "plan: ignoring future_key" in log and "seed: meta-data written into vda1" in log
        assert "seed: no module" not in log and "seed: insmod" not in log, log

        # The disk: the image, byte for byte outside the CIDATA partition; inside, the same
        # files plus the seed, in a file system that checks clean.
        disk_path = lab.tmpdir / f"{spec.name}.img"
        raw = tiny.raw.read_bytes()
        with disk_path.open("rb") as f:
            disk = f.read(len(raw) + MIB)
        start, size = first_partition(raw)
        assert disk[:start] == raw[:start]
        assert disk[start + size : len(raw)] == raw[start + size :]
        assert disk[len(raw) :] == bytes(MIB)  # nothing written past the image
        on_disk, in_image = fat_files(disk_path, start), fat_files(tiny.raw, start)
        seed = {"meta-data": (f"instance-id: {SYSTEM_ID}\nlocal-hostname: tiny-1\n"
                              f"seedfrom: {seed_url}\n").encode(), "user-data": b""}  # fmt: skip
        assert on_disk == {**in_image, **seed}
        partition = tmp_path / "cidata.img"
        partition.write_bytes(disk[start : start + size])
        fsck = subprocess.run(["fsck.vfat", "-n", str(partition)], capture_output=True, text=True,
                              check=False)  # fmt: skip
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr

        # And it boots: SeaBIOS -> SYSLINUX -> the tiny /init, which fetches its user-data.
        console = tmp_path / "deployed.console"
        argv = [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "512",
            "-nographic", "-monitor", "none", "-serial", f"file:{console}", "-no-reboot",
            "-netdev", f"tap,id=n0,ifname=tap-{spec.name},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac},romfile=",
            "-drive", f"file={disk_path},if=none,id=d0,format=raw",
            "-device", "virtio-blk-pci,drive=d0,bootindex=1",
        ]  # fmt: skip
        with (tmp_path / "deployed.qemu.log").open("w") as qemu_log:
            booted = lab.run(net.client_ns, argv, stdout=qemu_log, stderr=subprocess.STDOUT)
        assert wait_exit(booted, console, 120) == 0
        text = console.read_text(errors="replace")
        assert "EDGEBOX-DEPLOYED-OK firmware=bios" in text, text[-4000:]
        assert "EDGEBOX-USER-DATA: #cloud-config" in text, text[-4000:]
        fetched = [r for r in api.requests() if r["path"] == f"/cloud-init/{SYSTEM_ID}/user-data"]
        assert [r["code"] for r in fetched] == [200]


def test_vm_quick_erase_of_every_disk_leaves_no_signature(
    ephemeral: Ephemeral, tiny: TinyImage, tmp_path: Path
) -> None:
    second = 256 * MIB
    spec = VmSpec(name="erase", mac="52:54:00:eb:d0:02", cpus=1, disk_bytes=1 << 30,
                  extra_disks=(("virtio-blk-pci", second, "EBDISK0002"),))  # fmt: skip
    with Lab() as lab:
        # vda: the deployed tiny image (MBR + FAT); vdb: GPT with a FAT file system at 1 MiB.
        vda, vdb = lab.tmpdir / "erase.img", lab.tmpdir / "erase-1.img"
        vda.write_bytes(tiny.raw.read_bytes())
        with vda.open("r+b") as f:
            f.truncate(spec.disk_bytes)
        with vdb.open("wb") as f:
            f.truncate(second)
        subprocess.run(["sfdisk", "--quiet", str(vdb)], input="label: gpt\nstart=2048, "
                       "size=131072, type=linux\n", text=True, check=True)  # fmt: skip
        subprocess.run(["mkfs.vfat", "--offset", "2048", str(vdb), str(64 * 1024)],
                       check=True, capture_output=True)  # fmt: skip
        for disk in (vda, vdb):
            assert "PTTYPE=" in blkid(disk) and "TYPE=" in blkid(disk, MIB), disk

        net = lab.two_hosts(server_addr="10.231.0.1/24", bridge=True)
        start_dnsmasq(lab, net)
        plan = lab.tmpdir / "erase.plan"
        plan.write_text("mode=quick\ndisks=\n")
        api = stand_in(lab, net, spec.name, ["--erase-plan", str(plan)])
        append = (f"console=ttyS0 edgebox.url={api.url} edgebox.token={TOKEN} "
                  f"edgebox.purpose=erase edgebox.mac={spec.mac}")  # fmt: skip
        vm = boot_vm(lab, net, spec, ephemeral, append, tmp_path)
        assert wait_exit(vm.proc, vm.console) == 0
        seen = markers(vm.console)
        assert seen[seen.index(f"enlisted {SYSTEM_ID}") + 1 :] == [
            "erase vda quick", "erase vdb quick", "erase done", "poweroff",
        ], f"{seen}\n{vm.output()[-4000:]}"  # fmt: skip
        assert body_of(api, "/machine/v1/erase/done") == {
            "ok": True, "disks": {"vda": "quick", "vdb": "quick"},
            "serials": {"vda": spec.disk_serial, "vdb": spec.extra_disks[0][2]},
        }  # fmt: skip
        for disk in (vda, vdb):
            assert blkid(disk) == "", disk
            assert blkid(disk, MIB) == "", disk
        with vdb.open("rb") as f:
            f.seek(second - MIB)
            assert f.read() == bytes(MIB)  # the backup GPT is gone too
        (tmp_path / "requests.json").write_text(json.dumps(api.requests(), indent=2))


def blkid(device: Path, offset: int = 0) -> str:
    probe = subprocess.run(["blkid", "-p", "-O", str(offset), str(device)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return probe.stdout.strip()
