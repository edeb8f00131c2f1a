"""scripts/fetch-loaders takes the loaders from Debian's ipxe package; edgebox checks them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgebox.services.loaders import EXPECTED, check_loaders

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian)")
def test_fetch_and_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "fetch-loaders"), str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    check = check_loaders(tmp_path)
    assert check.good == EXPECTED and not check.messages
    assert (tmp_path / "undionly.kpxe").stat().st_size > 50_000
    # A loader altered after the fetch is reported and not served.
    with (tmp_path / "snponly.efi").open("ab") as f:
        f.write(b"\0")
    check = check_loaders(tmp_path)
    assert check.altered == ("snponly.efi",)
    assert "snponly.efi" not in check.good
    assert "do not match SHA256SUMS" in check.messages[0]


def test_missing_loaders_say_how_to_get_them(tmp_path: Path) -> None:
    check = check_loaders(tmp_path)
    assert check.missing == EXPECTED
    assert check.messages == (
        f"network-boot loaders missing in {tmp_path}: undionly.kpxe, snponly.efi, ipxe.efi; "
        f"run: scripts/fetch-loaders {tmp_path}",
    )


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian)")
def test_a_relative_directory_is_taken_from_where_it_is_run(tmp_path: Path) -> None:
    """scripts/run calls `scripts/fetch-loaders firmware-images` from the repository: the
    loaders must land there, not in the script's temporary directory."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "fetch-loaders"), "loaders"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    check = check_loaders(tmp_path / "loaders")
    assert check.good == EXPECTED and not check.messages
    assert f"in {tmp_path / 'loaders'}:" in result.stdout
