"""The network-boot loaders (iPXE builds from Debian's `ipxe` package) and their checksums.

`scripts/fetch-loaders DIR` puts undionly.kpxe, snponly.efi and ipxe.efi in DIR with a
SHA256SUMS file. At start edgebox checks them: a missing or altered loader is reported with
the command that fixes it, and is not served (a corrupted loader bricks a boot silently).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from edgebox.services.local_files import read_bounded

log = logging.getLogger(__name__)

EXPECTED = ("undionly.kpxe", "snponly.efi", "ipxe.efi")
MAX_SUMS = 64 * 1024
MAX_LOADER = 16 * 1024 * 1024  # iPXE builds are well under 2 MiB


@dataclass(frozen=True, slots=True)
class LoaderCheck:
    directory: Path
    good: tuple[str, ...]
    missing: tuple[str, ...]
    altered: tuple[str, ...] = ()
    messages: tuple[str, ...] = field(default=())


def check_loaders(directory: Path) -> LoaderCheck:
    sums: dict[str, str] = {}
    try:
        text = read_bounded(directory / "SHA256SUMS", MAX_SUMS).decode("utf-8", "replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums[name.strip()] = digest.strip()
    good, missing, altered = [], [], []
    for name in EXPECTED:
        try:
            data = read_bounded(directory / name, MAX_LOADER) if name in sums else None
        except OSError:
            data = None
        if data is None:
            missing.append(name)
        elif hashlib.sha256(data).hexdigest() != sums[name]:
            altered.append(name)
        else:
            good.append(name)
    messages = []
    fix = f"run: scripts/fetch-loaders {directory}"
    if missing:
        messages.append(f"network-boot loaders missing in {directory}: {', '.join(missing)}; {fix}")
    if altered:
        messages.append(
            f"network-boot loaders in {directory} do not match SHA256SUMS: "
            f"{', '.join(altered)}; they will not be served; {fix}"
        )
    return LoaderCheck(directory, tuple(good), tuple(missing), tuple(altered), tuple(messages))
