"""Re-checking a cached image: its signature against today's trusted keys, and every file's
SHA-256 and size on disk (a disk that rots, a person who edits a file by hand)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from edgebox.domain.image_manifest import SignedManifest
from edgebox.services.image_signing import TrustedKeys, UntrustedImage
from edgebox.storage.image_files import ImageFiles


@dataclass(frozen=True, slots=True)
class FileCheck:
    name: str
    sha256: str
    status: str  # ok, missing, damaged


@dataclass(frozen=True, slots=True)
class Findings:
    signature: str  # "ok" or why not
    files: tuple[FileCheck, ...]

    @property
    def ok(self) -> bool:
        return self.signature == "ok" and all(c.status == "ok" for c in self.files)

    def summary(self) -> str:
        bad = [f"{c.name} {c.status}" for c in self.files if c.status != "ok"]
        return "; ".join([*bad, *([] if self.signature == "ok" else [self.signature])])


async def check_image(signed: SignedManifest, files: ImageFiles, trusted: TrustedKeys) -> Findings:
    try:
        trusted.verify(signed)
        signature = "ok"
    except UntrustedImage as exc:
        signature = str(exc)
    checks = []
    for file in signed.manifest.files:
        status = await asyncio.to_thread(_check_file, files, file.sha256, file.size)
        checks.append(FileCheck(file.name, file.sha256, status))
    return Findings(signature, tuple(checks))


def _check_file(files: ImageFiles, sha256: str, size: int) -> str:
    path = files.path(sha256)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return "missing"
    ok = digest.hexdigest() == sha256 and path.stat().st_size == size
    return "ok" if ok else "damaged"
