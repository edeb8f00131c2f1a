"""BMC passwords at rest: AES-GCM with a key file beside the database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgebox.services.secret_box import SecretBox, SecretError


def test_the_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    key = tmp_path / "secrets.key"
    sealed = SecretBox.open(key).seal("hunter2", "machine:1")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert SecretBox.open(key).unseal(sealed, "machine:1") == "hunter2"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"]  # no temporary left


def test_each_seal_uses_a_fresh_nonce(tmp_path: Path) -> None:
    box = SecretBox.open(tmp_path / "k")
    assert box.seal("same", "x") != box.seal("same", "x")
    assert b"same" not in box.seal("same", "x")


def test_a_value_bound_to_one_owner_does_not_open_for_another(tmp_path: Path) -> None:
    box = SecretBox.open(tmp_path / "k")
    with pytest.raises(SecretError, match="does not open"):
        box.unseal(box.seal("pw", "machine:1"), "machine:2")


def test_a_tampered_value_or_another_key_is_refused(tmp_path: Path) -> None:
    box = SecretBox.open(tmp_path / "a")
    sealed = bytearray(box.seal("pw", "m"))
    sealed[-1] ^= 1
    with pytest.raises(SecretError, match="does not open"):
        box.unseal(bytes(sealed), "m")
    with pytest.raises(SecretError, match="does not open"):
        SecretBox.open(tmp_path / "b").unseal(box.seal("pw", "m"), "m")
    with pytest.raises(SecretError, match="unknown format"):
        box.unseal(b"\x02short", "m")


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    key = tmp_path / "secrets.key"
    key.write_bytes(b"too short")
    with pytest.raises(SecretError, match=r"secrets.key is 9 bytes, expected 32"):
        SecretBox.open(key)


def test_a_loosened_key_file_is_tightened(tmp_path: Path) -> None:
    key = tmp_path / "secrets.key"
    SecretBox.open(key)
    os.chmod(key, 0o644)
    SecretBox.open(key)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
