"""The agent's deploy and erase (docs/deploy-contract.md §2), on the host, against loop devices.

The agent of the built initramfs runs with that initramfs's busybox (nothing else on PATH)
against the stand-in machine API on 127.0.0.1, which hands out a deploy or erase plan and the
image file (or a corrupted, stalling or oversized one). The disk is a loop device over a sparse
file: a real block device, so dd, blockdev and blkdiscard do what they would do on a server.

This host's kernel may lack the MBR parser and vfat (this lab's does), so a deploy that
succeeds, which ends by writing the seed into the image's FAT partition, is shown in a VM with
the ephemeral kernel (test_agent_deploy_vm.py). Here: every way a deploy is refused or fails,
with the disk untouched or its ends zeroed, and the three erase modes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ephemeral_api import Deploy
from tests.integration.ephemeral_initramfs import AgentRun, read_newc, unpack, write_tree
from tests.integration.ephemeral_lab import (
    Ephemeral,
    MachineApi,
    api_argv,
    api_started,
    build_ephemeral,
)
from tests.lab import skip_unless_lab, stop_process

pytestmark = [pytest.mark.root, pytest.mark.slow]

TOKEN = "t0k"
SYSTEM_ID = "abc123"  # what the stand-in's enlist answers
MIB = 1 << 20
DISK_BYTES = 64 * MIB
PATTERN = b"\xa5"  # what the disk holds before a test: any change to it shows


@pytest.fixture(scope="module")
def ephemeral() -> Ephemeral:
    skip_unless_lab("losetup", "blkid", "sfdisk", "partx", "mkfs.vfat", "apt-get", "modinfo")
    return build_ephemeral()


@pytest.fixture(scope="module")
def agent(ephemeral: Ephemeral, tmp_path_factory: pytest.TempPathFactory) -> AgentRun:
    root = tmp_path_factory.mktemp("initramfs")
    unpack(read_newc(ephemeral.initrd), root)
    return AgentRun(root, tmp_path_factory.mktemp("agent"))


# -- the disk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    name: str  # loopN, the kernel name the plan uses
    backing: Path

    @property
    def device(self) -> Path:
        return Path("/dev") / self.name

    def read(self, offset: int = 0, size: int = DISK_BYTES) -> bytes:
        with self.device.open("rb") as f:
            f.seek(offset)
            return f.read(size)

    def write(self, offset: int, data: bytes) -> None:
        with self.device.open("r+b") as f:
            f.seek(offset)
            f.write(data)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    """A 64 MiB loop device filled with PATTERN; detached afterwards, whatever happened."""
    backing = tmp_path / "disk.img"
    backing.write_bytes(PATTERN * DISK_BYTES)
    attached = subprocess.run(["losetup", "--find", "--show", str(backing)],
                              capture_output=True, text=True, check=True)  # fmt: skip
    device = attached.stdout.strip()
    try:
        yield Loop(Path(device).name, backing)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


# -- the stand-in and the agent -------------------------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Deploy], MachineApi]]:
    procs: list[subprocess.Popen[str]] = []

    def start(deploy: Deploy) -> MachineApi:
        record = tmp_path / "api.jsonl"
        uploads = tmp_path / "uploads"
        uploads.mkdir(exist_ok=True)
        argv = [*api_argv("127.0.0.1", 0, TOKEN, ["poweroff"], record),
                "--uploads", str(uploads), *deploy_args(deploy)]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        api = api_started(proc, "127.0.0.1", record)
        api.uploads = uploads
        return api

    yield start
    for proc in procs:
        stop_process(proc)


def deploy_args(deploy: Deploy) -> list[str]:
    """The stand-in's options for what `deploy` says it serves."""
    args: list[str] = ["--done-action", deploy.done_action]
    for option, path in (("--deploy-plan", deploy.deploy_plan), ("--erase-plan", deploy.erase_plan),
                         ("--image", deploy.image), ("--user-data", deploy.user_data)):  # fmt: skip
        if path is not None:
            args += [option, str(path)]
    if deploy.image_corrupt:
        args.append("--image-corrupt")
    if deploy.image_stall_after is not None:
        args += ["--image-stall-after", str(deploy.image_stall_after)]
    return args


def run_agent(agent: AgentRun, api: MachineApi, purpose: str, timeout: float = 90,
              **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return agent.run(api.url, TOKEN, Path("/sys"), Path("/proc"), timeout=timeout,
                     EDGEBOX_PURPOSE=purpose, **env)  # fmt: skip


def done_of(api: MachineApi, op: str) -> dict[str, Any]:
    [done] = [r["body"] for r in api.requests() if r["path"] == f"/machine/v1/{op}/done"]
    return dict(done)


def image_fetches(api: MachineApi) -> list[dict[str, Any]]:
    return [r for r in api.requests() if r["path"].startswith("/images/")]


def markers(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.removeprefix("EDGEBOX: ") for line in done.stderr.splitlines()
            if line.startswith("EDGEBOX: ")]  # fmt: skip


# -- plans ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    path: Path  # the file as served (compressed)
    compression: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def make_image(directory: Path, raw: bytes, compression: str) -> Image:
    path = directory / f"image.{compression}"
    if compression == "gzip":
        path.write_bytes(gzip.compress(raw, mtime=0))
    else:
        path.write_bytes(raw)
    return Image(path, compression)


def plan_text(image: Image, disk_name: str, **override: str | None) -> str:
    """A deploy plan as edgebox sends it; `override` replaces a line's value (None drops it)."""
    port_free_url = "http://127.0.0.1:{port}"
    lines = {
        "image_url": f"{port_free_url}/images/{image.sha256}",
        "sha256": image.sha256,
        "size": str(image.size),
        "compression": image.compression,
        "kind": "raw",
        "disk": disk_name,
        "seed_url": f"{port_free_url}/cloud-init/{SYSTEM_ID}/",
        "system_id": SYSTEM_ID,
        "hostname": "node-1",
    }
    lines.update(override)  # type: ignore[arg-type]
    return "".join(f"{k}={v}\n" for k, v in lines.items() if v is not None)


def deploy_with(serve: Callable[[Deploy], MachineApi], tmp_path: Path, plan: str,
                image: Image, **deploy: Any) -> MachineApi:  # fmt: skip
    """Start the stand-in with `plan` (its port filled in once known) and `image`."""
    plan_file = tmp_path / "deploy.plan"
    api = serve(Deploy(deploy_plan=plan_file, image=image.path, **deploy))
    plan_file.write_text(plan.replace("{port}", api.url.rsplit(":", 1)[1]))
    return api


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def untouched(loop: Loop) -> bool:
    return loop.read() == PATTERN * DISK_BYTES


# -- deploy: refused before the disk is touched ---------------------------------------------------

REFUSALS = [
    # (what the plan says, the start of what the agent answers)
    ({"image_url": None}, "plan lacks image_url"),
    ({"sha256": "abc"}, "plan: sha256 is not usable: 'abc'"),
    ({"image_url": "http://127.0.0.1:{port}/images/x;$(reboot)"}, "plan: image_url is not usable"),
    ({"hostname": "$(touch CANARY)"}, "plan: hostname is not usable: '$(touch CANARY)'"),
    ({"size": "12 "}, "plan: size is not usable"),
    ({"kind": "tar"}, "image kind tar: this agent writes raw disk images only"),
    ({"compression": "lz4"}, "compression lz4 is not one this agent knows"),
    ({"system_id": "someone-else"}, "the plan is for someone-else, this machine enlisted as"),
    ({"disk": "nosuchdisk"}, "no disk nosuchdisk (disks:"),
    ({"compression": "none", "size": str(DISK_BYTES + 1)}, "disk loop"),  # smaller than the image
]


@pytest.mark.parametrize(("override", "error"), REFUSALS)
def test_a_plan_it_cannot_use_is_refused_before_the_disk_is_touched(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path,
    override: dict[str, str | None], error: str,
) -> None:  # fmt: skip
    image = make_image(tmp_path, random_bytes(MIB), "none")
    plan = plan_text(image, loop.name, **{"disk": loop.name, **override})
    api = deploy_with(serve, tmp_path, plan, image)
    done = run_agent(agent, api, "deploy")
    assert done.returncode == 0, done.stderr  # told to power off
    report = done_of(api, "deploy")
    assert report["ok"] is False and report["step"] == "plan", report
    assert report["error"].startswith(error), report
    assert markers(done)[-1].startswith("deploy failed plan: "), done.stderr
    assert image_fetches(api) == []
    assert untouched(loop)
    assert not (agent.work / "CANARY").exists() and not Path("CANARY").exists()


@pytest.mark.parametrize(
    ("plan_lines", "error"),
    [
        ("garbage without an equals sign\n", "plan line is not KEY=value: 'garbage without"),
        ("hostname=node-2\n", "plan gives hostname twice"),
        ("Image_url=http://x/\n", "plan line is not KEY=value"),
        ("image-url=http://x/\n", "plan key is not a word: 'image-url'"),
    ],
)
def test_lines_that_are_not_key_value_are_refused(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path, plan_lines: str, error: str
) -> None:
    image = make_image(tmp_path, random_bytes(MIB), "none")
    api = deploy_with(serve, tmp_path, plan_lines + plan_text(image, loop.name), image)
    run_agent(agent, api, "deploy")
    report = done_of(api, "deploy")
    assert (report["ok"], report["step"]) == (False, "plan") and report["error"].startswith(
        error
    ), report
    assert image_fetches(api) == [] and untouched(loop)


def test_the_disk_it_picks_is_the_first_non_removable_by_name(
    agent: AgentRun, serve: Any, tmp_path: Path
) -> None:
    """With `disk=` empty: not loop/ram/zram, not removable (sr0), kernel name order. The /sys
    tree is made up and /dev is an empty directory, so the pick is refused as no block device
    and nothing real can be touched."""
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    disk = {"size": "4194304\n", "removable": "0\n", "ro": "0\n"}
    write_tree(sysfs, {f"block/{name}/{attr}": value for name in ("sda", "vda", "nvme0n1")
                       for attr, value in disk.items()})  # fmt: skip
    write_tree(sysfs, {"block/sr0/removable": "1\n", "block/loop0/removable": "0\n",
                       "block/aaa-ram0/removable": "1\n"})  # fmt: skip
    image = make_image(tmp_path, random_bytes(MIB), "none")
    api = deploy_with(serve, tmp_path, plan_text(image, ""), image)
    done = agent.run(api.url, TOKEN, sysfs, Path("/proc"), timeout=60,
                     EDGEBOX_PURPOSE="deploy", EDGEBOX_DEV=str(dev))  # fmt: skip
    assert done_of(api, "deploy")["error"] == f"{dev}/nvme0n1 is not a block device", done.stderr


# -- deploy: failures while writing ---------------------------------------------------------------


def assert_ends_zeroed(loop: Loop) -> None:
    assert loop.read(0, MIB) == bytes(MIB), "the first MiB is not zero"
    assert loop.read(DISK_BYTES - MIB, MIB) == bytes(MIB), "the last MiB is not zero"


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_corrupted_download_fails_verify_and_zeroes_the_disk_ends(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path, compression: str
) -> None:
    """The server sends the image with one byte flipped: the SHA-256 over the download does
    not match (a gzip stream also fails its CRC; the rest is still read and hashed)."""
    image = make_image(tmp_path, random_bytes(3 * MIB), compression)
    api = deploy_with(serve, tmp_path, plan_text(image, loop.name), image, image_corrupt=True)
    done = run_agent(agent, api, "deploy")
    report = done_of(api, "deploy")
    assert (report["ok"], report["step"]) == (False, "verify"), report
    assert report["error"].endswith(f"the plan says {image.sha256}"), report
    flipped = bytearray(image.path.read_bytes())
    flipped[len(flipped) // 2] ^= 1
    assert hashlib.sha256(flipped).hexdigest() in report["error"]  # what it really read
    assert_ends_zeroed(loop)
    assert markers(done)[-1].startswith("deploy failed verify: "), done.stderr
    assert api.uploads is not None
    log = (api.uploads / "deploy.log").read_text()
    assert f"zeroed the first and last MiB of {loop.name}" in log, log
    if compression == "none":  # dd wrote it all, and only the ends were wiped
        assert loop.read(MIB, MIB) == bytes(flipped[MIB : 2 * MIB])


def test_a_download_that_stalls_is_given_up(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path
) -> None:
    image = make_image(tmp_path, random_bytes(4 * MIB), "none")
    api = deploy_with(serve, tmp_path, plan_text(image, loop.name), image,
                      image_stall_after=2 * MIB)  # fmt: skip
    done = run_agent(agent, api, "deploy", EDGEBOX_STALL="3", EDGEBOX_PROGRESS="1")
    report = done_of(api, "deploy")
    assert (report["ok"], report["step"]) == (False, "download"), report
    assert report["error"].startswith("no data from http://127.0.0.1:") and report[
        "error"
    ].endswith("for 3s"), report
    assert_ends_zeroed(loop)
    # Progress came while it downloaded: the 2 MiB that did arrive (wget's written bytes, which
    # also count its request, a few hundred bytes), of the image's size.
    progress = [r["body"] for r in api.requests() if r["path"] == "/machine/v1/deploy/progress"]
    assert any(
        p["step"] == "download"
        and 2 * MIB <= p["done"] < 2 * MIB + 1024
        and p["total"] == image.size
        for p in progress
    ), progress
    assert "deploy written" not in done.stderr


def test_an_image_larger_than_the_disk_fails_write(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path
) -> None:
    image = make_image(tmp_path, bytes(DISK_BYTES + 8 * MIB), "gzip")  # compresses to ~80 KiB
    api = deploy_with(serve, tmp_path, plan_text(image, loop.name), image)
    run_agent(agent, api, "deploy")
    report = done_of(api, "deploy")
    assert (report["ok"], report["step"]) == (False, "write"), report
    assert report["error"].startswith(f"writing /dev/{loop.name} failed: "), report
    assert "No space left on device" in report["error"], report
    assert_ends_zeroed(loop)


def test_an_image_that_hashes_right_but_does_not_decompress_fails_write(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path
) -> None:
    image = replace(make_image(tmp_path, random_bytes(MIB), "none"), compression="gzip")
    api = deploy_with(serve, tmp_path, plan_text(image, loop.name), image)
    run_agent(agent, api, "deploy")
    report = done_of(api, "deploy")
    assert (report["ok"], report["step"]) == (False, "write"), report
    assert report["error"].startswith("the image does not decompress with gunzip"), report
    assert_ends_zeroed(loop)


# -- erase ----------------------------------------------------------------------------------------


def erase_with(serve: Callable[[Deploy], MachineApi], tmp_path: Path, plan: str) -> MachineApi:
    plan_file = tmp_path / "erase.plan"
    plan_file.write_text(plan)
    return serve(Deploy(erase_plan=plan_file))


def blkid(device: Path, offset: int = 0) -> str:
    """What blkid finds by probing the bytes (not its cache); empty if nothing."""
    probe = subprocess.run(["blkid", "-p", "-O", str(offset), str(device)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return probe.stdout.strip()


@pytest.fixture
def partitioned(loop: Loop) -> Loop:
    """The loop disk with an MBR, a FAT partition at 1 MiB (32 MiB) and a mark in its middle,
    the partition known to the kernel (partx: this host's kernel may not parse MBRs itself)."""
    subprocess.run(["sfdisk", "--quiet", str(loop.device)], input="label: dos\nstart=2048, "
                   "size=65536, type=ef\n", text=True, check=True)  # fmt: skip
    subprocess.run(["partx", "--add", str(loop.device)], check=False, capture_output=True)
    part = Path(f"/dev/{loop.name}p1")
    subprocess.run(["mkfs.vfat", "-n", "CIDATA", str(part)], check=True, capture_output=True)
    loop.write(17 * MIB, b"KEEP-ME")
    assert "TYPE=" in blkid(loop.device, MIB) and "PTTYPE=" in blkid(loop.device)
    return loop


def test_quick_erase_removes_the_partition_table_and_file_system_signatures(
    agent: AgentRun, serve: Any, partitioned: Loop, tmp_path: Path
) -> None:
    loop = partitioned
    api = erase_with(serve, tmp_path, f"mode=quick\ndisks={loop.name}\n")
    done = run_agent(agent, api, "erase")
    assert done.returncode == 0, done.stderr
    # A loop device has no serial: the report says so, for edgebox to match by name.
    assert done_of(api, "erase") == {
        "ok": True,
        "disks": {loop.name: "quick"},
        "serials": {loop.name: ""},
    }
    assert blkid(loop.device) == "", "a signature is left on the disk"
    assert blkid(loop.device, MIB) == "", "the FAT file system's signature is left"
    assert loop.read(MIB, MIB) == bytes(MIB) and loop.read(33 * MIB - MIB, MIB) == bytes(MIB)
    assert loop.read(DISK_BYTES - MIB, MIB) == bytes(MIB)
    assert loop.read(17 * MIB, 7) == b"KEEP-ME"  # quick: only the ends
    assert markers(done)[-2:] == [f"erase {loop.name} quick", "erase done"]
    progress = [r["body"] for r in api.requests() if r["path"] == "/machine/v1/erase/progress"]
    assert progress[-1] == {"disk": loop.name, "done": DISK_BYTES, "total": DISK_BYTES}


def test_full_erase_zeroes_everything(
    agent: AgentRun, serve: Any, partitioned: Loop, tmp_path: Path
) -> None:
    loop = partitioned
    api = erase_with(serve, tmp_path, f"mode=full\ndisks={loop.name}\n")
    run_agent(agent, api, "erase", EDGEBOX_PROGRESS="1")
    assert done_of(api, "erase") == {
        "ok": True,
        "disks": {loop.name: "full"},
        "serials": {loop.name: ""},
    }
    assert loop.read() == bytes(DISK_BYTES)


def test_secure_erase_says_what_it_really_did(
    agent: AgentRun, serve: Any, partitioned: Loop, tmp_path: Path
) -> None:
    """A loop device has no secure discard; a plain discard punches holes in the backing file
    (and reads back zeros) where its file system can, else the agent zeroes the disk."""
    loop = partitioned
    api = erase_with(serve, tmp_path, f"mode=secure\ndisks={loop.name}\n")
    run_agent(agent, api, "erase")
    report = done_of(api, "erase")
    assert report["ok"] is True, report
    assert report["disks"][loop.name] in {"secure-discard", "secure-fallback-full"}, report
    assert loop.read() == bytes(DISK_BYTES)
    assert api.uploads is not None
    log = (api.uploads / "erase.log").read_text()
    assert f"{loop.name}: secure discard failed" in log, log


def test_an_erase_naming_a_missing_disk_touches_none(
    agent: AgentRun, serve: Any, loop: Loop, tmp_path: Path
) -> None:
    api = erase_with(serve, tmp_path, f"mode=full\ndisks={loop.name} nosuchdisk\n")
    done = run_agent(agent, api, "erase")
    report = done_of(api, "erase")
    assert report["ok"] is False and report["disk"] == "nosuchdisk", report
    assert report["error"].startswith("no disk nosuchdisk"), report
    assert untouched(loop)
    assert markers(done)[-1].startswith("erase failed nosuchdisk: "), done.stderr


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        ("mode=shred\ndisks=vda\n", "erase mode 'shred' is not quick, full or secure"),
        ("disks=vda\n", "plan lacks mode"),
        ("mode=quick\ndisks=vda;reboot\n", "erase disks not usable: 'vda;reboot'"),
        ("just words\n", "plan line is not KEY=value"),
    ],
)
def test_an_erase_plan_it_cannot_use_is_refused(
    agent: AgentRun, serve: Any, tmp_path: Path, plan: str, error: str
) -> None:
    api = erase_with(serve, tmp_path, plan)
    run_agent(agent, api, "erase")
    report = done_of(api, "erase")
    assert report == {"ok": False, "disk": "", "error": report["error"]}, report
    assert report["error"].startswith(error), report


def test_the_initramfs_can_decompress_every_compression(ephemeral: Ephemeral,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """gunzip and unxz are busybox applets; zstd is Debian's, shipped with its libraries: run
    each inside the unpacked initramfs (chroot), where nothing of the host's can help."""
    root = tmp_path / "root"
    unpack(read_newc(ephemeral.initrd), root)
    raw = random_bytes(MIB)
    for tool, compress in (("gunzip -c", ["gzip", "-c"]), ("unxz -c", ["xz", "-c"]),
                           ("zstd -dcq", ["zstd", "-c"])):  # fmt: skip
        if shutil.which(compress[0]) is None:
            pytest.skip(f"no {compress[0]} on this host to compress with")
        packed = subprocess.run(compress, input=raw, capture_output=True, check=True).stdout
        out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", tool], input=packed,
                             capture_output=True, check=False)  # fmt: skip
        assert out.returncode == 0 and out.stdout == raw, (tool, out.stderr)
    manifest = json.loads((ephemeral.directory / "manifest.json").read_text())
    assert {"fat", "vfat", "nls_cp437", "nls_ascii"} <= set(manifest["on_demand_modules"])
