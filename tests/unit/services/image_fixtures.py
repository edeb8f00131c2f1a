"""Signed test images on disk, and an image service over a real temporary database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from edgebox.domain.image_manifest import ImageFile, ImageManifest
from edgebox.domain.settings import ImageSettings
from edgebox.services.image_service import ImageService
from edgebox.services.image_signing import (
    KeyPair,
    TrustedKeys,
    load_private_key,
    sign_manifest,
    write_key_pair,
)
from edgebox.storage.database import Database
from edgebox.storage.image_files import ImageFiles
from edgebox.storage.image_store import ImageRecord, ImageState, ImageStore
from tests.conftest import FakeClock


@dataclass
class BuiltImage:
    directory: Path
    manifest: ImageManifest
    disk: bytes

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"


def build_image(
    directory: Path,
    key: KeyPair | None,
    name: str = "tiny",
    size: int = 300_000,
    seed: bytes = b"",
    release: str = "1",
) -> BuiltImage:
    """A directory holding a random disk file and manifest.json, signed with `key` (None:
    an envelope without a signature)."""
    directory.mkdir(parents=True, exist_ok=True)
    disk = (seed or os.urandom(16)) * (size // max(len(seed), 16) + 1)
    disk = disk[:size]
    (directory / "disk.raw.zst").write_bytes(disk)
    manifest = ImageManifest(
        name,
        "edgebox",
        release,
        "amd64",
        "raw",
        "zstd",
        "2026-11-26T05:38:53Z",
        (ImageFile("disk", "disk.raw.zst", hashlib.sha256(disk).hexdigest(), len(disk)),),
    )
    if key is None:
        envelope = json.loads(sign_manifest(manifest, load_private_key(_any_key(directory))))
        del envelope["signature"]
        raw = json.dumps(envelope).encode()
    else:
        raw = sign_manifest(manifest, load_private_key(key.private_path))
    (directory / "manifest.json").write_bytes(raw)
    return BuiltImage(directory, manifest, disk)


def _any_key(directory: Path) -> Path:
    return write_key_pair(directory / "throwaway").private_path


def make_service(
    db: Database, clock: FakeClock, root: Path, key: KeyPair, budget: int = 0
) -> ImageService:
    return ImageService(
        ImageSettings(trusted_keys=(str(key.public_path),), budget_bytes=budget),
        store=ImageStore(db),
        files=ImageFiles(root),
        trusted=TrustedKeys.from_files([key.public_path]),
        clock=clock,
        retry_backoff=0.01,
    )


@asynccontextmanager
async def running(service: ImageService) -> AsyncIterator[ImageService]:
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settled(service: ImageService, image_id: str, within: float = 20) -> ImageRecord:
    """Wait until an import ends either way."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        image = await service.resolve(image_id)
        if image.state != ImageState.IMPORTING:
            return image
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"import of {image_id} still running after {within}s")
        await asyncio.sleep(0.02)
