"""Image manifests: validation with field errors, canonical bytes, the signed envelope."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from edgebox.domain.image_manifest import (
    ManifestError,
    UnsignedImage,
    canonical_bytes,
    encode_envelope,
    image_id,
    parse_envelope,
    parse_manifest,
)

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": 1,
        "name": "debian-12-amd64",
        "os": "debian",
        "release": "12",
        "arch": "amd64",
        "kind": "raw",
        "compression": "zstd",
        "created": "2026-11-26T05:38:53Z",
        "files": [{"role": "disk", "name": "disk.raw.zst", "sha256": SHA_A, "size": 1000}],
    }
    data.update(changes)
    return data


def test_a_valid_manifest_parses() -> None:
    m = parse_manifest(manifest())
    assert (m.name, m.kind, m.compression, m.disk.sha256, m.size) == (
        "debian-12-amd64",
        "raw",
        "zstd",
        SHA_A,
        1000,
    )
    assert m.file("kernel") is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": "Debian 12"}, "name", "lowercase letters"),
        ({"name": ""}, "name", "lowercase letters"),
        ({"name": "-x"}, "name", "lowercase letters"),
        ({"kind": "qcow2"}, "kind", "raw, tar"),
        ({"compression": "bz2"}, "compression", "none, gzip, zstd, xz"),
        ({"created": "yesterday"}, "created", "YYYY-MM-DDTHH:MM:SSZ"),
        ({"format": 2}, "format", "expected 1"),
        ({"arch": "amd 64"}, "arch", "letters, digits"),
        ({"files": []}, "files", "non-empty list"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_each_bad_field_is_named(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest(**changes))
    assert err.value.field == field
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("file", "field", "words"),
    [
        ({"sha256": "A" * 64}, "files[0].sha256", "64 lowercase hex"),
        ({"sha256": "a" * 63}, "files[0].sha256", "64 lowercase hex"),
        ({"size": 0}, "files[0].size", "from 1 to"),
        ({"size": -5}, "files[0].size", "from 1 to"),
        ({"size": True}, "files[0].size", "from 1 to"),
        ({"size": "10"}, "files[0].size", "from 1 to"),
        ({"name": "../etc/passwd"}, "files[0].name", "plain file name"),
        ({"name": "a/b"}, "files[0].name", "plain file name"),
        ({"role": "root"}, "files[0].role", "disk, kernel, initrd"),
        ({"extra": 1}, "files[0].extra", "unknown field"),
    ],
)
def test_each_bad_file_field_is_named(file: dict[str, Any], field: str, words: str) -> None:
    entry = {"role": "disk", "name": "disk.raw", "sha256": SHA_A, "size": 10, **file}
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest(files=[entry]))
    assert err.value.field == field
    assert words in str(err.value)


def test_roles_disk_required_kernel_and_initrd_paired() -> None:
    kernel = {"role": "kernel", "name": "vmlinuz", "sha256": SHA_B, "size": 5}
    initrd = {"role": "initrd", "name": "initrd.gz", "sha256": SHA_C, "size": 6}
    disk = manifest()["files"][0]
    with pytest.raises(ManifestError, match="no file with role 'disk'"):
        parse_manifest(manifest(files=[kernel, initrd]))
    with pytest.raises(ManifestError, match="come together"):
        parse_manifest(manifest(files=[disk, kernel]))
    with pytest.raises(ManifestError, match="more than one disk"):
        parse_manifest(manifest(files=[disk, {**disk, "name": "other"}]))
    with pytest.raises(ManifestError, match="same name"):
        parse_manifest(manifest(files=[disk, {**kernel, "name": disk["name"]}, initrd]))
    m = parse_manifest(manifest(files=[disk, kernel, initrd]))
    assert m.size == 1011
    assert m.file("initrd") is not None


def test_a_shared_file_counts_once_in_the_size() -> None:
    disk = manifest()["files"][0]
    kernel = {"role": "kernel", "name": "vmlinuz", "sha256": SHA_A, "size": 1000}
    initrd = {"role": "initrd", "name": "initrd.gz", "sha256": SHA_C, "size": 6}
    assert parse_manifest(manifest(files=[disk, kernel, initrd])).size == 1006


def test_canonical_bytes_are_sorted_compact_and_stable() -> None:
    m = parse_manifest(manifest())
    raw = canonical_bytes(m)
    assert b" " not in raw and b"\n" not in raw
    keys = list(json.loads(raw))
    assert keys == sorted(keys)
    assert raw.startswith(b'{"arch":"amd64","compression":"zstd","created":')
    # Key order and whitespace of the source do not matter; values do.
    shuffled = dict(reversed(list(manifest().items())))
    assert canonical_bytes(parse_manifest(shuffled)) == raw
    assert image_id(parse_manifest(manifest(release="12.1"))) != image_id(m)
    assert image_id(m) == image_id(parse_manifest(json.loads(raw)))


def test_envelope_round_trip_and_its_errors() -> None:
    m = parse_manifest(manifest())
    sig = bytes(range(64))
    raw = encode_envelope(m, "0123456789abcdef", sig)
    signed = parse_envelope(raw)
    assert (signed.manifest, signed.key_id, signed.signature) == (m, "0123456789abcdef", sig)
    assert signed.image_id == image_id(m)
    env = json.loads(raw)
    with pytest.raises(UnsignedImage, match="is not signed"):
        parse_envelope(json.dumps({"manifest": env["manifest"]}).encode())
    with pytest.raises(UnsignedImage):
        parse_envelope(json.dumps({"manifest": env["manifest"], "signature": None}).encode())
    short = {**env["signature"], "value": base64.b64encode(b"x" * 10).decode()}
    with pytest.raises(ManifestError, match="64 bytes"):
        parse_envelope(json.dumps({"manifest": env["manifest"], "signature": short}).encode())
    rsa = {**env["signature"], "alg": "rsa"}
    with pytest.raises(ManifestError, match=r"signature\.alg"):
        parse_envelope(json.dumps({"manifest": env["manifest"], "signature": rsa}).encode())
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_envelope(b"{nope")
    with pytest.raises(ManifestError, match="missing"):
        parse_envelope(b"{}")
