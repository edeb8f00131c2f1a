"""Ed25519 over image manifests: key files in both formats, signing, and every refusal."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgebox.domain.image_manifest import ImageFile, ImageManifest, parse_envelope
from edgebox.services.image_signing import (
    KeyFileError,
    TrustedKeys,
    UntrustedImage,
    key_id,
    load_private_key,
    load_public_key,
    sign_manifest,
    write_key_pair,
)

MANIFEST = ImageManifest(
    "tiny",
    "edgebox",
    "1",
    "amd64",
    "raw",
    "zstd",
    "2026-11-26T05:38:53Z",
    (ImageFile("disk", "disk.raw.zst", "a" * 64, 1234),),
)


def test_keygen_writes_a_private_pem_0600_and_a_public_pem(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path / "builder")
    assert pair.private_path.name == "builder.key" and pair.public_path.name == "builder.pub"
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert pair.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public = load_public_key(pair.public_path)
    assert key_id(public) == pair.key_id == key_id(load_private_key(pair.private_path).public_key())
    with pytest.raises(KeyFileError, match="exists"):
        write_key_pair(tmp_path / "builder")


def test_raw_32_byte_key_files_work_too(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    raw_private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    (tmp_path / "k").write_bytes(raw_private)
    (tmp_path / "k.pub").write_bytes(raw_public)
    signed = parse_envelope(sign_manifest(MANIFEST, load_private_key(tmp_path / "k")))
    assert TrustedKeys.from_files([tmp_path / "k.pub"]).verify(signed) == key_id(key.public_key())


def test_bad_key_files_say_what_is_wrong(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path / "k")
    with pytest.raises(KeyFileError, match="give edgebox the public key"):
        load_public_key(pair.private_path)
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(KeyFileError, match="not an Ed25519 public key"):
        load_public_key(tmp_path / "junk")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")


def test_a_signature_verifies_and_survives_reformatting(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path / "k")
    raw = sign_manifest(MANIFEST, load_private_key(pair.private_path))
    trusted = TrustedKeys.from_files([pair.public_path])
    assert trusted.verify(parse_envelope(raw)) == pair.key_id
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert trusted.verify(parse_envelope(compact)) == pair.key_id


def test_a_manifest_changed_after_signing_is_refused(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path / "k")
    signed = parse_envelope(sign_manifest(MANIFEST, load_private_key(pair.private_path)))
    trusted = TrustedKeys.from_files([pair.public_path])
    bigger = dataclasses.replace(signed.manifest.files[0], size=1235)
    for manifest in (
        dataclasses.replace(signed.manifest, release="2"),
        dataclasses.replace(signed.manifest, files=(bigger,)),
    ):
        with pytest.raises(UntrustedImage, match="changed after it was signed"):
            trusted.verify(dataclasses.replace(signed, manifest=manifest))
    flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    with pytest.raises(UntrustedImage, match="bad signature"):
        trusted.verify(dataclasses.replace(signed, signature=flipped))


def test_an_unknown_key_or_no_key_is_refused(tmp_path: Path) -> None:
    ours = write_key_pair(tmp_path / "ours")
    theirs = write_key_pair(tmp_path / "theirs")
    signed = parse_envelope(sign_manifest(MANIFEST, load_private_key(theirs.private_path)))
    with pytest.raises(
        UntrustedImage, match=f"signed by key {theirs.key_id}, which is not trusted"
    ):
        TrustedKeys.from_files([ours.public_path]).verify(signed)
    with pytest.raises(UntrustedImage, match="no trusted signing keys are configured"):
        TrustedKeys([]).verify(signed)
    # A key id that lies is no way in: the signature decides.
    liar = dataclasses.replace(signed, key_id=ours.key_id)
    with pytest.raises(UntrustedImage, match="bad signature"):
        TrustedKeys.from_files([ours.public_path]).verify(liar)
