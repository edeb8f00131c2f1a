"""TftpFiles: names to files under the roots, never outside them; shared descriptors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgebox.services.tftp_files import TftpFiles
from edgebox.wire.tftp import FileError, FileErrorKind


class StepClock:
    def __init__(self) -> None:
        self.mono = 100.0

    def now(self) -> float:
        return 1_800_000_000.0 + self.mono

    def monotonic(self) -> float:
        return self.mono


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root (served), tmp/second (served), tmp/outside (not served)."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "snponly.efi").write_bytes(bytes(range(256)) * 40)
    (root / "sub" / "pxelinux.0").write_bytes(b"pxe")
    (root / "Boot").mkdir()
    (root / "Boot" / "BCD").write_bytes(b"bcd")
    second = tmp_path / "second"
    second.mkdir()
    (second / "only-in-second").write_bytes(b"two")
    (second / "snponly.efi").write_bytes(b"shadowed")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    return tmp_path


@pytest.fixture
def files(tree: Path) -> TftpFiles:
    return TftpFiles([tree / "root", tree / "second"], StepClock())


def content(found: object) -> bytes:
    assert not isinstance(found, FileError), found
    size = found.size  # type: ignore[attr-defined]
    data: bytes = found.read(0, size)  # type: ignore[attr-defined]
    found.close()  # type: ignore[attr-defined]
    return data


def error(found: object) -> FileErrorKind:
    assert isinstance(found, FileError), f"expected an error, got {found!r}"
    return found.kind


def test_serves_a_file_from_the_first_root_that_has_it(files: TftpFiles, tree: Path) -> None:
    assert content(files.open("snponly.efi", "10.0.0.5")) == bytes(range(256)) * 40
    assert content(files.open("only-in-second", "10.0.0.5")) == b"two"
    assert content(files.open("sub/pxelinux.0", "10.0.0.5")) == b"pxe"


@pytest.mark.parametrize(
    "name", ["/snponly.efi", "//sub//./pxelinux.0", "\\Boot\\BCD", "sub\\pxelinux.0"]
)
def test_absolute_names_and_backslashes_are_relative_to_the_roots(
    files: TftpFiles, name: str
) -> None:
    assert content(files.open(name, "10.0.0.5")) in (bytes(range(256)) * 40, b"pxe", b"bcd")


def test_reads_at_offsets_without_reading_the_whole_file(files: TftpFiles) -> None:
    found = files.open("snponly.efi", "10.0.0.5")
    assert not isinstance(found, FileError)
    assert found.size == 10240
    assert found.read(1000, 4) == bytes([232, 233, 234, 235])
    assert found.read(10238, 2) == bytes([254, 255])
    assert found.read(10240, 512) == b""  # at the end: the core sends an empty final block
    found.close()


@pytest.mark.parametrize(
    "name",
    [
        "../outside/secret",
        "sub/../../outside/secret",
        "..\\outside\\secret",
        "/../outside/secret",
        "snponly.efi\x00.txt",
        "bad\nname",
    ],
)
def test_dot_dot_and_control_characters_are_access_violations(files: TftpFiles, name: str) -> None:
    assert error(files.open(name, "10.0.0.5")) is FileErrorKind.ACCESS_VIOLATION


def test_an_absolute_host_path_is_looked_up_inside_the_roots(files: TftpFiles, tree: Path) -> None:
    # "/tmp/.../outside/secret" means "<root>/tmp/.../outside/secret", which does not exist.
    assert error(files.open(str(tree / "outside" / "secret"), "10.0.0.5")) is (
        FileErrorKind.NOT_FOUND
    )
    assert error(files.open("/etc/passwd", "10.0.0.5")) is FileErrorKind.NOT_FOUND


def test_symlinks_out_of_the_roots_are_refused(files: TftpFiles, tree: Path) -> None:
    root = tree / "root"
    (root / "escape").symlink_to(tree / "outside" / "secret")
    (root / "escape-rel").symlink_to("../outside/secret")
    (root / "escape-dir").symlink_to(tree / "outside")
    (root / "etc").symlink_to("/etc")
    for name in ("escape", "escape-rel", "escape-dir/secret", "etc/passwd", "escape-dir"):
        assert error(files.open(name, "10.0.0.5")) is FileErrorKind.ACCESS_VIOLATION, name


def test_symlinks_inside_the_roots_are_followed(files: TftpFiles, tree: Path) -> None:
    root = tree / "root"
    (root / "ipxe.efi").symlink_to("snponly.efi")
    (root / "to-second").symlink_to(tree / "second" / "only-in-second")
    (root / "alias").symlink_to("sub")
    assert content(files.open("ipxe.efi", "10.0.0.5")) == bytes(range(256)) * 40
    assert content(files.open("to-second", "10.0.0.5")) == b"two"
    assert content(files.open("alias/pxelinux.0", "10.0.0.5")) == b"pxe"


def test_a_root_that_is_itself_a_symlink_works(tree: Path) -> None:
    (tree / "link-root").symlink_to(tree / "root")
    files = TftpFiles([tree / "link-root"], StepClock())
    assert content(files.open("sub/pxelinux.0", "10.0.0.5")) == b"pxe"


def test_missing_directories_and_dangling_links_are_not_found(files: TftpFiles, tree: Path) -> None:
    (tree / "root" / "dangling").symlink_to(tree / "root" / "nothing-here")
    for name in ("nothing", "sub", "Boot", "dangling", "snponly.efi/x", "sub/nothing"):
        assert error(files.open(name, "10.0.0.5")) is FileErrorKind.NOT_FOUND, name


def test_special_files_are_refused_without_blocking(files: TftpFiles, tree: Path) -> None:
    os.mkfifo(tree / "root" / "fifo")
    assert error(files.open("fifo", "10.0.0.5")) is FileErrorKind.ACCESS_VIOLATION


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_an_access_violation(files: TftpFiles, tree: Path) -> None:
    (tree / "root" / "private").write_bytes(b"x")
    (tree / "root" / "private").chmod(0)
    assert error(files.open("private", "10.0.0.5")) is FileErrorKind.ACCESS_VIOLATION


def test_no_roots_means_nothing_is_found() -> None:
    assert error(TftpFiles([], StepClock()).open("x", "10.0.0.5")) is FileErrorKind.NOT_FOUND


def test_generated_files_are_made_per_client_and_win_over_disk(files: TftpFiles) -> None:
    files.register_generated("/boot.ipxe", lambda ip: f"#!ipxe\necho {ip}\n".encode())
    files.register_generated("snponly.efi", lambda ip: b"generated")
    assert content(files.open("boot.ipxe", "10.0.0.5")) == b"#!ipxe\necho 10.0.0.5\n"
    assert content(files.open("\\boot.ipxe", "10.0.0.6")) == b"#!ipxe\necho 10.0.0.6\n"
    assert content(files.open("snponly.efi", "10.0.0.5")) == b"generated"


def test_a_failing_generator_makes_the_file_unavailable(files: TftpFiles) -> None:
    def broken(ip: str) -> bytes:
        raise RuntimeError("template missing")

    files.register_generated("boot.ipxe", broken)
    found = files.open("boot.ipxe", "10.0.0.5")
    assert error(found) is FileErrorKind.UNAVAILABLE
    assert "template missing" in found.detail  # type: ignore[union-attr]


def test_concurrent_transfers_share_one_descriptor_closed_when_idle(tree: Path) -> None:
    clock = StepClock()
    files = TftpFiles([tree / "root"], clock, idle_seconds=10)
    handles = [files.open("snponly.efi", f"10.0.0.{i}") for i in range(20)]
    assert files.open_descriptors == 1
    for handle in handles:
        assert not isinstance(handle, FileError)
        handle.close()
        handle.close()  # idempotent
    assert files.open_descriptors == 1  # kept for the next client
    clock.mono += 5
    assert files.close_idle() == 0
    assert content(files.open("snponly.efi", "10.0.0.1"))  # reuses it
    clock.mono += 10
    assert files.close_idle() == 1
    assert files.open_descriptors == 0


def test_a_file_replaced_on_disk_gets_a_new_descriptor(tree: Path) -> None:
    files = TftpFiles([tree / "root"], StepClock())
    running = files.open("sub/pxelinux.0", "10.0.0.1")
    assert not isinstance(running, FileError)
    new = tree / "root" / "sub" / "new"
    new.write_bytes(b"newer pxe")
    new.replace(tree / "root" / "sub" / "pxelinux.0")
    assert content(files.open("sub/pxelinux.0", "10.0.0.2")) == b"newer pxe"
    assert running.read(0, 3) == b"pxe"  # the old transfer finishes on the old file
    assert files.open_descriptors == 2
    running.close()
    assert files.open_descriptors == 1


def test_close_keeps_busy_descriptors_until_their_transfer_ends(files: TftpFiles) -> None:
    busy = files.open("snponly.efi", "10.0.0.1")
    assert content(files.open("only-in-second", "10.0.0.1")) == b"two"
    assert files.open_descriptors == 2
    files.close()
    assert files.open_descriptors == 1
    assert not isinstance(busy, FileError)
    assert busy.read(0, 2) == b"\x00\x01"
    busy.close()
    assert files.open_descriptors == 0


def test_the_cache_is_bounded(tree: Path) -> None:
    for i in range(10):
        (tree / "root" / f"f{i}").write_bytes(b"x")
    files = TftpFiles([tree / "root"], StepClock(), max_cached=4)
    for i in range(10):
        assert content(files.open(f"f{i}", "10.0.0.1")) == b"x"
    assert files.open_descriptors == 4
    held = [files.open(f"f{i}", "10.0.0.1") for i in range(6)]
    assert files.open_descriptors == 6  # busy ones are never closed under a transfer
    for handle in held:
        assert not isinstance(handle, FileError)
        handle.close()
    assert files.open_descriptors <= 4


def test_a_withheld_file_is_unavailable(files: TftpFiles) -> None:
    files.withhold("snponly.efi", "does not match SHA256SUMS")
    found = files.open("/snponly.efi", "10.0.0.5")
    assert error(found) is FileErrorKind.UNAVAILABLE
    assert "SHA256SUMS" in found.detail  # type: ignore[union-attr]
    assert content(files.open("only-in-second", "10.0.0.5")) == b"two"
