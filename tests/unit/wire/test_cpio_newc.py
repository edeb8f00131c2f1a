"""The token's initrd: a newc archive the kernel unpacks (checked with GNU cpio as well)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgebox.wire.cpio_newc import CpioEntry, CpioError, decode_newc, encode_newc

ENTRIES = [
    CpioEntry("etc", None),
    CpioEntry("etc/edgebox", None),
    CpioEntry("etc/edgebox/token", b"ebb_secret\n", mode=0o600),
]


def test_round_trip_and_alignment() -> None:
    archive = encode_newc(ENTRIES)
    assert archive.startswith(b"070701")
    assert len(archive) % 4 == 0
    assert decode_newc(archive) == ENTRIES


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_gnu_cpio_unpacks_it(tmp_path: Path) -> None:
    subprocess.run(["cpio", "-id", "--quiet"], input=encode_newc(ENTRIES), cwd=tmp_path, check=True)
    token = tmp_path / "etc" / "edgebox" / "token"
    assert token.read_bytes() == b"ebb_secret\n"
    assert token.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", ["/etc/x", "", "etc/../x"])
def test_only_relative_names(name: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        encode_newc([CpioEntry(name, b"")])


def test_garbage_is_refused_with_where() -> None:
    with pytest.raises(CpioError, match="byte 0"):
        decode_newc(b"not an archive")
    truncated = encode_newc(ENTRIES)[:150]
    with pytest.raises(CpioError):
        decode_newc(truncated)
