"""Secrets at rest: BMC passwords are stored encrypted with AES-256-GCM.

The key is a file created 0600 beside the database (see `Settings.secret_key_path`), so the
database alone — a backup, a copy attached to a support ticket — does not reveal passwords.
Each value is sealed with a fresh 96-bit nonce and bound to what it belongs to (the associated
data, e.g. the machine's id), so a sealed password copied onto another machine's row does not
open. A stored value is: version byte, nonce, ciphertext with its tag.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_VERSION = 1
_NONCE = 12
_KEY_BYTES = 32


class SecretError(Exception):
    """The key file is unusable or a sealed value does not open; the message says which."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise SecretError(f"a secret key is {_KEY_BYTES} bytes, got {len(key)}")
        self._key = key

    @classmethod
    def open(cls, path: Path) -> SecretBox:
        """The key in `path`, created (0600, atomically) when it does not exist yet."""
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = _create_key(path)
        except OSError as exc:
            raise SecretError(f"cannot read the secret key {path}: {exc.strerror}") from None
        if len(key) != _KEY_BYTES:
            raise SecretError(
                f"the secret key {path} is {len(key)} bytes, expected {_KEY_BYTES}: it is damaged;"
                " restore it from a backup (BMC passwords cannot be read without it)"
            )
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: tighten rather than refuse to start
        return cls(key)

    def seal(self, plaintext: str, bound_to: str) -> bytes:
        # cryptography is imported on first use, not at start: its OpenSSL binding is ~6.5 MiB
        # of RSS that an edgebox with no BMC passwords never needs (bench/footprint.py).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        nonce = secrets.token_bytes(_NONCE)
        sealed = AESGCM(self._key).encrypt(nonce, plaintext.encode(), bound_to.encode())
        return bytes([_VERSION]) + nonce + sealed

    def unseal(self, blob: bytes, bound_to: str) -> str:
        if len(blob) < 1 + _NONCE + 16 or blob[0] != _VERSION:
            raise SecretError("a stored secret is damaged (unknown format)")
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        try:
            nonce, sealed = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
            plain = AESGCM(self._key).decrypt(nonce, sealed, bound_to.encode())
        except InvalidTag:
            raise SecretError(
                "a stored secret does not open with this key (was the key file replaced?);"
                " set the BMC password again"
            ) from None
        return plain.decode()


def _create_key(path: Path) -> bytes:
    key = secrets.token_bytes(_KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # never replaces a key another process just created
    except FileExistsError:
        temporary.unlink()
        return path.read_bytes()
    temporary.unlink()
    return key
