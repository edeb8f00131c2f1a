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

log = logging.getLogger(__name__)

EXPECTED = ("undionly.kpxe", "snponly.efi", "ipxe.efi")


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
        for line in (directory / "SHA256SUMS").read_text().splitlines():
            digest, _, name = line.partition("  ")
            if digest and name:
                sums[name.strip()] = digest.strip()
    except OSError:
        pass
    good, missing, altered = [], [], []
    for name in EXPECTED:
        path = directory / name
        if not path.is_file() or name not in sums:
            missing.append(name)
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sums[name]:
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
