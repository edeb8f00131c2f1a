"""scripts/build-image --tiny: a signed raw image that imports, whose first partition is the
FAT file system labelled CIDATA that cloud-init (and the tiny image's own /init) look for, and
whose disk boots to its marker under SeaBIOS (MBR -> SYSLINUX) and under OVMF
(\\EFI\\BOOT\\BOOTX64.EFI, a UKI). Without a seed (this test writes none) the tiny /init
says so and powers off; the deploy tests give it one (test_agent_deploy_vm.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgebox.domain.image_manifest import parse_envelope
from edgebox.lab.vm import OVMF_CODE, OVMF_VARS
from edgebox.services.image_signing import TrustedKeys, write_key_pair
from tests.lab import skip_unless_lab

pytestmark = [pytest.mark.slow, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
MARKER = "EDGEBOX-TINY booted"
TOOLS = ("qemu-system-x86_64", "zstd", "syslinux", "mcopy", "mkfs.vfat", "sfdisk", "objcopy")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    skip_unless_lab(*TOOLS)
    work = tmp_path_factory.mktemp("tiny")
    key = write_key_pair(work / "builder")
    started = time.monotonic()
    built = subprocess.run(
        [
            str(ROOT / "scripts" / "build-image"),
            "--tiny",
            "--key",
            str(key.private_path),
            "--out",
            str(work / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    print(f"build-image --tiny took {time.monotonic() - started:.1f} s")
    out = Path(built.stdout.strip().splitlines()[-1])
    raw = work / "disk.raw"
    subprocess.run(["zstd", "-dqf", str(out / "disk.raw.zst"), "-o", str(raw)], check=True)
    return out, key.public_path


def test_the_manifest_is_signed_and_describes_the_disk(tiny: tuple[Path, Path]) -> None:
    out, public = tiny
    signed = parse_envelope((out / "manifest.json").read_bytes())
    assert TrustedKeys.from_files([public]).verify(signed)
    m = signed.manifest
    assert (m.name, m.kind, m.compression, m.disk.name) == (
        "edgebox-tiny",
        "raw",
        "zstd",
        "disk.raw.zst",
    )
    assert m.disk.size == (out / "disk.raw.zst").stat().st_size
    assert json.loads((out / "manifest.json").read_text())["signature"]["alg"] == "ed25519"


def test_the_first_partition_is_fat_labelled_cidata(tiny: tuple[Path, Path]) -> None:
    out, _ = tiny
    probe = subprocess.run(
        ["blkid", "-p", "-o", "export", "-O", str(1 << 20), str(out.parent / "disk.raw")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    fields = dict(line.split("=", 1) for line in probe.stdout.splitlines())
    assert (fields["TYPE"], fields["LABEL"]) == ("vfat", "CIDATA"), fields


def boot(disk: Path, firmware: str, work: Path) -> str:
    argv = [
        "qemu-system-x86_64",
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-m",
        "256",
        "-nographic",
        "-monitor",
        "none",
        "-no-reboot",
        "-net",
        "none",
        "-drive",
        f"file={disk},if=none,id=d0,format=raw,snapshot=on",
        "-device",
        "virtio-blk-pci,drive=d0,bootindex=1",
    ]
    if firmware == "uefi":
        vars_copy = work / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        argv += [
            "-drive",
            f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive",
            f"if=pflash,format=raw,file={vars_copy}",
        ]
    console = work / f"{firmware}.console"
    with console.open("wb") as sink:
        proc = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=240)  # /init powers off after printing the marker
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return console.read_text(errors="replace")


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_the_disk_boots_on_both_firmwares(
    tiny: tuple[Path, Path], firmware: str, tmp_path: Path
) -> None:
    out, _ = tiny
    text = boot(out.parent / "disk.raw", firmware, tmp_path)
    assert f"{MARKER} firmware={firmware}" in text, text[-3000:]
    assert "EDGEBOX-TINY no seed: no seedfrom in the meta-data on /dev/vda1" in text, text[-3000:]
    assert "EDGEBOX-DEPLOYED-OK" not in text
    if firmware == "bios":
        assert "SYSLINUX" in text


def test_a_second_build_with_the_same_inputs_is_the_cached_one(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    built, public = tiny
    key = public.with_suffix(".key")
    out = tmp_path / "out"  # a copy: the other tests keep the module's image as it was
    shutil.copytree(built, out)
    before = (out / "disk.raw.zst").stat().st_mtime_ns

    def build(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / "build-image"), "--tiny", "--key", str(key),
             "--out", str(out), *extra],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip

    again = build()
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stderr and Path(again.stdout.split()[-1]) == out
    assert (out / "disk.raw.zst").stat().st_mtime_ns == before
    # Another name is another image: built anew, and its manifest says so.
    renamed = build("--name", "tiny")
    assert renamed.returncode == 0, renamed.stderr
    assert "up to date" not in renamed.stderr
    assert parse_envelope((out / "manifest.json").read_bytes()).manifest.name == "tiny"
    refused = build("--name", "no spaces")
    assert refused.returncode != 0 and "--name: letters, digits" in refused.stderr
