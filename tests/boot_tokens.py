"""Tests' side of the boot token's delivery: the script names the token's initrd, which is
fetched once and unpacked, as iPXE and the kernel would."""

from __future__ import annotations

import gzip
from typing import Any
from urllib.parse import urlsplit

from edgebox.wire.cpio_newc import decode_newc


def token_url(script: str) -> str | None:
    """The path of the token's initrd in an iPXE script, or None (no token handed out)."""
    for line in script.splitlines():
        if line.startswith("initrd --name token.cpio "):
            return urlsplit(line.split()[-1]).path
    return None


def token_from_cpio(archive: bytes) -> str:
    """The token in the gzipped newc archive edgebox serves as the token's initrd."""
    [entry] = [e for e in decode_newc(gzip.decompress(archive)) if e.name == "etc/edgebox/token"]
    assert entry.data is not None
    return entry.data.decode().strip()


async def fetch_token(client: Any, script: str) -> str:
    """With an aiohttp TestClient: the token the script hands out (fails if it hands none)."""
    path = token_url(script)
    assert path is not None, f"the script hands out no token:\n{script}"
    assert "edgebox.token=" not in script  # never on the kernel command line
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return token_from_cpio(await resp.read())
