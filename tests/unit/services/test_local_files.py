"""Files someone named are read only if regular, never past a limit, and never block."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from edgebox.domain.image_manifest import ImageFile
from edgebox.services.boot_resources import BootResourceError, BootResources
from edgebox.services.image_sources import FetchError, LocalSource
from edgebox.services.loaders import check_loaders
from edgebox.services.local_files import (
    TooLarge,
    check_regular_or_directory,
    open_regular,
    read_bounded,
)


def test_only_regular_files_open(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"data")
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would wait for a writer for ever
    with open_regular(tmp_path / "file") as f:
        assert f.read() == b"data"
    for path, kind in [
        (tmp_path / "fifo", "a FIFO"),
        (Path("/dev/zero"), "a character device"),
        (tmp_path, "a directory"),
    ]:
        with pytest.raises(OSError) as caught:
            open_regular(path)
        assert caught.value.strerror == f"it is {kind}, not a regular file"
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "absent")


def test_reads_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "small").write_bytes(b"x" * 10)
    assert read_bounded(tmp_path / "small", 10) == b"x" * 10
    with pytest.raises(TooLarge):
        read_bounded(tmp_path / "small", 9)


def test_paths_to_import_from(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    check_regular_or_directory(tmp_path)
    check_regular_or_directory(tmp_path / "absent")  # reported when read
    with pytest.raises(ValueError, match="is a FIFO, not a regular file or a directory"):
        check_regular_or_directory(tmp_path / "fifo")
    (tmp_path / "link").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="is a character device"):
        check_regular_or_directory(tmp_path / "link")


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def size(self) -> int:
        return len(self.data)

    async def write(self, data: bytes) -> None:
        self.data += data

    async def restart(self) -> None:
        self.data.clear()


async def test_a_local_image_file_is_read_no_further_than_the_manifest_says(
    tmp_path: Path,
) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "disk.raw").write_bytes(b"0123456789" * 100_000)
    (tmp_path / "zero").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo")
    source = LocalSource(tmp_path)
    sink = Sink()
    await source.fetch(ImageFile("disk", "disk.raw", "0" * 64, 25), sink)
    assert bytes(sink.data) == b"0123456789012345678901234"
    for name, kind in [("zero", "a character device"), ("fifo", "a FIFO")]:
        with pytest.raises(FetchError) as caught:
            await asyncio.wait_for(source.fetch(ImageFile("disk", name, "0" * 64, 25), Sink()), 5)
        assert (
            str(caught.value) == f"cannot read {tmp_path / name}: it is {kind}, not a regular file"
        )
        assert caught.value.retryable is False


async def test_a_manifest_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(FetchError, match="it is a FIFO, not a regular file"):
        await asyncio.wait_for(LocalSource(tmp_path).read_manifest(), 5)


def test_boot_resource_and_loader_manifests_are_bounded(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    os.mkfifo(build / "manifest.json")
    with pytest.raises(BootResourceError, match="it is a FIFO, not a regular file"):
        BootResources(tmp_path / "resources").import_dir(build)
    loaders = tmp_path / "loaders"
    loaders.mkdir()
    os.mkfifo(loaders / "SHA256SUMS")
    (loaders / "ipxe.efi").symlink_to("/dev/zero")
    check = check_loaders(loaders)  # returns: no loader is good, none hangs the start
    assert check.good == () and "ipxe.efi" in check.missing
