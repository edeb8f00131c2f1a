"""Image manifests: what an OS image is, the exact bytes that get signed, and their checks.

An image is a set of files plus a manifest that names them with their SHA-256 and size:

    {"format": 1, "name": "debian-12-amd64", "os": "debian", "release": "12",
     "arch": "amd64", "kind": "raw", "compression": "zstd",
     "created": "2026-11-26T05:38:53Z",
     "files": [{"role": "disk", "name": "disk.raw.zst", "sha256": "…", "size": 123}]}

`kind` says what the `disk` file holds once decompressed: a whole raw disk, or a tar of the
root file system. `kernel` and `initrd` files are optional and come as a pair (an image that
must be booted into before it is written, such as an ephemeral environment).

It is distributed inside a signed envelope:

    {"manifest": {…}, "signature": {"alg": "ed25519", "key_id": "…", "value": "<base64>"}}

The signature covers `canonical_bytes(manifest)`: the manifest as JSON with sorted keys, no
whitespace and ASCII only. Re-encoding a parsed manifest gives the same bytes, so the envelope
may be pretty-printed or re-serialised without breaking the signature, while a change to any
value does. The image's id is the SHA-256 of those bytes.

Standard library only: the Ed25519 arithmetic lives in services/image_signing.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

FORMAT = 1
KINDS = ("raw", "tar")
COMPRESSIONS = ("none", "gzip", "zstd", "xz")
ROLES = ("disk", "kernel", "initrd")
SIGNATURE_ALG = "ed25519"
MAX_ENVELOPE_BYTES = 1 << 20
MAX_FILE_SIZE = 1 << 44  # 16 TiB: a guard against nonsense, far above any real image

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,31}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_FIELDS = ("format", "name", "os", "release", "arch", "kind", "compression", "created", "files")
_FILE_FIELDS = ("role", "name", "sha256", "size")


class ManifestError(ValueError):
    """A manifest (or its envelope) that is not valid; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class UnsignedImage(ManifestError):
    """The envelope carries no signature at all."""


@dataclass(frozen=True, slots=True)
class ImageFile:
    role: str  # disk, kernel or initrd
    name: str  # the file's name beside the manifest (and in a URL relative to it)
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ImageManifest:
    name: str
    os: str
    release: str
    arch: str
    kind: str  # raw or tar
    compression: str  # none, gzip, zstd or xz: how the disk file is compressed
    created: str  # UTC, YYYY-MM-DDTHH:MM:SSZ
    files: tuple[ImageFile, ...]

    @property
    def disk(self) -> ImageFile:
        return next(f for f in self.files if f.role == "disk")

    def file(self, role: str) -> ImageFile | None:
        return next((f for f in self.files if f.role == role), None)

    @property
    def size(self) -> int:
        """Bytes the image takes in the cache (a file listed twice is stored once)."""
        return sum({f.sha256: f.size for f in self.files}.values())


@dataclass(frozen=True, slots=True)
class SignedManifest:
    manifest: ImageManifest
    key_id: str
    signature: bytes  # the raw 64-byte Ed25519 signature over canonical_bytes(manifest)

    @property
    def image_id(self) -> str:
        return image_id(self.manifest)


def manifest_dict(manifest: ImageManifest) -> dict[str, object]:
    return {
        "format": FORMAT,
        "name": manifest.name,
        "os": manifest.os,
        "release": manifest.release,
        "arch": manifest.arch,
        "kind": manifest.kind,
        "compression": manifest.compression,
        "created": manifest.created,
        "files": [
            {"role": f.role, "name": f.name, "sha256": f.sha256, "size": f.size}
            for f in manifest.files
        ],
    }


def canonical_bytes(manifest: ImageManifest) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, ASCII only."""
    text = json.dumps(manifest_dict(manifest), sort_keys=True, separators=(",", ":"))
    return text.encode("ascii")


def image_id(manifest: ImageManifest) -> str:
    """The image's identity: SHA-256 of its canonical bytes (any change makes a new image)."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def parse_manifest(data: object) -> ImageManifest:
    """Check decoded JSON against the manifest schema; the first problem raises."""
    obj = _object(data, "manifest")
    _only(obj, _FIELDS, "")
    if obj.get("format") != FORMAT:
        raise ManifestError(
            "format",
            f"expected {FORMAT} (the only format this edgebox reads), got {obj.get('format')!r}",
        )
    name = _text(obj, "name", _NAME, "lowercase letters, digits, '.', '_' and '-', up to 63")
    os_name = _text(obj, "os", _WORD, "letters, digits and '._+~-', up to 32")
    release = _text(obj, "release", _WORD, "letters, digits and '._+~-', up to 32")
    arch = _text(obj, "arch", _WORD, "letters, digits and '._+~-', up to 32")
    kind = _choice(obj, "kind", KINDS)
    compression = _choice(obj, "compression", COMPRESSIONS)
    created = _text(obj, "created", _CREATED, "a UTC time as YYYY-MM-DDTHH:MM:SSZ")
    raw_files = obj.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise ManifestError("files", "expected a non-empty list of files")
    files = tuple(_file(item, f"files[{i}]") for i, item in enumerate(raw_files))
    _check_roles(files)
    return ImageManifest(name, os_name, release, arch, kind, compression, created, files)


def encode_envelope(manifest: ImageManifest, key_id: str, signature: bytes) -> bytes:
    """The signed envelope as written to `manifest.json` (indented for people to read)."""
    envelope = {
        "manifest": manifest_dict(manifest),
        "signature": {
            "alg": SIGNATURE_ALG,
            "key_id": key_id,
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode("ascii")


def parse_envelope(raw: bytes) -> SignedManifest:
    """Decode a signed envelope. The signature is NOT checked here (see image_signing)."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise ManifestError("manifest", f"larger than {MAX_ENVELOPE_BYTES} bytes: not a manifest")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("manifest", f"not valid JSON ({exc})") from None
    obj = _object(data, "envelope")
    if "manifest" not in obj:
        raise ManifestError("manifest", 'missing: expected {"manifest": …, "signature": …}')
    _only(obj, ("manifest", "signature"), "")
    manifest = parse_manifest(obj["manifest"])
    if obj.get("signature") in (None, "", {}):
        raise UnsignedImage(
            "signature",
            f"the image {manifest.name!r} is not signed; edgebox imports only "
            "images signed with a trusted key (sign it with 'edgebox images sign')",
        )
    sig = _object(obj["signature"], "signature")
    _only(sig, ("alg", "key_id", "value"), "signature.")
    if sig.get("alg") != SIGNATURE_ALG:
        raise ManifestError("signature.alg", f"expected {SIGNATURE_ALG!r}, got {sig.get('alg')!r}")
    key_id = sig.get("key_id")
    if not isinstance(key_id, str) or not re.fullmatch(r"[0-9a-f]{16}", key_id):
        raise ManifestError("signature.key_id", "expected 16 hex digits")
    value = sig.get("value")
    try:
        signature = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64:
        raise ManifestError("signature.value", "expected a base64 Ed25519 signature (64 bytes)")
    return SignedManifest(manifest, key_id, signature)


def _object(data: object, what: str) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise ManifestError(what, f"expected a JSON object, got {type(data).__name__}")
    return data


def _only(obj: Mapping[str, object], known: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise ManifestError(f"{prefix}{unknown[0]}", f"unknown field (known: {', '.join(known)})")


def _text(
    obj: Mapping[str, object], field: str, pattern: re.Pattern[str], rule: str, prefix: str = ""
) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ManifestError(f"{prefix}{field}", f"expected {rule}, got {value!r}")
    return value


def _choice(obj: Mapping[str, object], field: str, choices: tuple[str, ...]) -> str:
    value = obj.get(field)
    if value not in choices:
        raise ManifestError(field, f"expected one of {', '.join(choices)}, got {value!r}")
    assert isinstance(value, str)
    return value


def _file(data: object, where: str) -> ImageFile:
    obj = _object(data, where)
    _only(obj, _FILE_FIELDS, f"{where}.")
    role = obj.get("role")
    if role not in ROLES:
        raise ManifestError(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    assert isinstance(role, str)
    name = _text(obj, "name", _FILE_NAME, "a plain file name (letters, digits, '._-')", f"{where}.")
    sha = _text(obj, "sha256", _SHA256, "64 lowercase hex digits", f"{where}.")
    size = obj.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_FILE_SIZE:
        raise ManifestError(
            f"{where}.size", f"expected a size in bytes from 1 to {MAX_FILE_SIZE}, got {size!r}"
        )
    return ImageFile(role, name, sha, size)


def _check_roles(files: tuple[ImageFile, ...]) -> None:
    roles = [f.role for f in files]
    for role in ROLES:
        if roles.count(role) > 1:
            raise ManifestError("files", f"more than one {role} file")
    if "disk" not in roles:
        raise ManifestError("files", "no file with role 'disk' (the image itself)")
    if ("kernel" in roles) != ("initrd" in roles):
        raise ManifestError("files", "a kernel and an initrd come together, or neither")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ManifestError("files", "two files have the same name")
