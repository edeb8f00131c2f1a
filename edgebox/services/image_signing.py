"""Ed25519 signatures over image manifests, and the keys that make or check them.

Key files are either raw (32 bytes: the public key, or the private key's seed) or PEM
(PKCS#8 for a private key, SubjectPublicKeyInfo for a public one), so a key made by
`edgebox images keygen`, by `openssl genpkey -algorithm ed25519` or by another tool reads the
same. A key is named by its key id: the first 16 hex digits of the SHA-256 of its raw public
key; the envelope carries the id so that the right trusted key is tried first, but the check is
the signature itself, never the id.

edgebox trusts only the public keys that `images.trusted_keys` names: an image whose manifest
is unsigned, was changed after signing, or was signed by any other key is refused with a
message that says which of the three it is.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# cryptography is imported where a key is used, not with this module: its OpenSSL binding is
# ~6.5 MiB of RSS that an idle edgebox without trusted keys never needs (bench/footprint.py).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

from edgebox.domain.image_manifest import (
    ImageManifest,
    SignedManifest,
    canonical_bytes,
    encode_envelope,
)

RAW_KEY_SIZE = 32


class KeyFileError(Exception):
    """A key file that cannot be used; the message names the file and what is wrong."""


class UntrustedImage(Exception):
    """A signature that does not verify against any trusted key; the message says why."""


def key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    data = _read(path)
    if len(data) == RAW_KEY_SIZE:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"{path}: not an Ed25519 private key (raw 32 bytes or PEM): {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )

    data = _read(path)
    if len(data) == RAW_KEY_SIZE:
        return Ed25519PublicKey.from_public_bytes(data)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path}: a private key; give edgebox the public key (.pub) only")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"{path}: not an Ed25519 public key (raw 32 bytes or PEM): {exc}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 public key")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def write_key_pair(prefix: Path) -> KeyPair:
    """Make a new key: PREFIX.key (PEM, mode 0600) and PREFIX.pub (PEM). Never overwrites."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists; choose another name or remove it first")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    return KeyPair(private_path, public_path, key_id(key.public_key()))


def sign_manifest(manifest: ImageManifest, key: Ed25519PrivateKey) -> bytes:
    """The signed envelope (manifest.json's contents) for `manifest`."""
    signature = key.sign(canonical_bytes(manifest))
    return encode_envelope(manifest, key_id(key.public_key()), signature)


class TrustedKeys:
    """The public keys whose signatures edgebox accepts."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> TrustedKeys:
        return cls(load_public_key(path) for path in paths)

    @property
    def ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, signed: SignedManifest) -> str:
        """Return the id of the key that signed; raise UntrustedImage otherwise."""
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415

        name = signed.manifest.name
        if not self._keys:
            raise UntrustedImage(
                f"the image {name!r} cannot be checked: no trusted signing keys are configured "
                "(add public key files to images.trusted_keys)"
            )
        data = canonical_bytes(signed.manifest)
        named = self._keys.get(signed.key_id)
        if named is not None:
            try:
                named.verify(signed.signature, data)
            except InvalidSignature:
                raise UntrustedImage(
                    f"the image {name!r} has a bad signature from trusted key {signed.key_id}: "
                    "its manifest was changed after it was signed; refusing it"
                ) from None
            return signed.key_id
        # Not named by id: it may still be a trusted key under another id scheme; try them all.
        for kid, key in self._keys.items():
            try:
                key.verify(signed.signature, data)
            except InvalidSignature:
                continue
            return kid
        raise UntrustedImage(
            f"the image {name!r} is signed by key {signed.key_id}, which is not trusted here "
            f"(trusted: {', '.join(self.ids)}); add its public key to images.trusted_keys "
            "if you trust it"
        )
