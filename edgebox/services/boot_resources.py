"""Kernels and initrds of the ephemeral environment, stored by content hash.

    <resources_dir>/<sha256>/vmlinuz, initrd.gz, manifest.json
    <resources_dir>/current -> <sha256>

An import checks every file against the manifest that the build wrote (SHA-256 and size),
copies into a temporary directory, fsyncs, and renames it into place; `current` is switched
by renaming a new symlink over it. A reader therefore sees the old set or the new one, never
half of one, and a crash leaves at most a stray temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebox.services.local_files import read_bounded

FILES = ("vmlinuz", "initrd.gz")
MAX_MANIFEST = 1024 * 1024  # the build writes a few KiB (packages, modules, files)


class BootResourceError(Exception):
    """An import that cannot be done; the message says what is wrong with which file."""


@dataclass(frozen=True, slots=True)
class BootResource:
    digest: str  # the directory name: SHA-256 over the files' hashes
    path: Path
    kernel_version: str

    def file(self, name: str) -> Path | None:
        return self.path / name if name in FILES else None


def _read_manifest(directory: Path) -> dict[str, Any]:
    """A build's manifest.json: a regular file of at most `MAX_MANIFEST` bytes, an object."""
    data = json.loads(read_bounded(directory / "manifest.json", MAX_MANIFEST))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class BootResources:
    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> BootResource | None:
        link = self.root / "current"
        try:
            target = os.readlink(link)
        except OSError:
            return None
        return self._load(self.root / target)

    def get(self, digest: str) -> BootResource | None:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            return None
        path = self.root / digest
        return self._load(path) if path.is_dir() else None

    def _load(self, path: Path) -> BootResource | None:
        try:
            manifest = _read_manifest(path)
        except (OSError, ValueError):
            return None
        return BootResource(path.name, path, str(manifest.get("kernel_version", "")))

    def import_dir(self, source: Path) -> BootResource:
        """Verify `source` (a build output directory) against its manifest and make it current."""
        try:
            manifest = _read_manifest(source)
        except (OSError, ValueError) as exc:
            raise BootResourceError(f"{source}/manifest.json cannot be read: {exc}") from None
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise BootResourceError(f"{source}/manifest.json has no 'files' map")
        hashes = []
        for name in FILES:
            entry = files.get(name)
            if not isinstance(entry, dict):
                raise BootResourceError(f"{source}/manifest.json does not list {name}")
            path = source / name
            if not path.is_file():
                raise BootResourceError(f"{path} is missing")
            actual = _sha256(path)
            if actual != entry.get("sha256") or path.stat().st_size != entry.get("size"):
                raise BootResourceError(
                    f"{path} does not match its manifest (sha256 {actual}, "
                    f"expected {entry.get('sha256')}): a damaged or edited build"
                )
            hashes.append(actual)
        digest = hashlib.sha256("".join(hashes).encode()).hexdigest()
        final = self.root / digest
        if not final.is_dir():
            self._copy_in(source, final)
        self._point_current_at(digest)
        resource = self._load(final)
        assert resource is not None
        return resource

    def _copy_in(self, source: Path, final: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=self.root))
        try:
            for name in (*FILES, "manifest.json"):
                shutil.copyfile(source / name, tmp / name)
                with (tmp / name).open("rb") as f:
                    os.fsync(f.fileno())
            tmp.chmod(0o755)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _point_current_at(self, digest: str) -> None:
        tmp_link = self.root / f".current-{os.getpid()}"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(digest)
        tmp_link.rename(self.root / "current")
