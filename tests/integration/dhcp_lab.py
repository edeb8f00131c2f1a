"""edgebox serving DHCP into a lab namespace, for integration tests.

edgebox runs in the root namespace (its API on 127.0.0.1) and opens its DHCP sockets inside
the lab's server namespace (`dhcp.interfaces[].netns`), as the virtual lab does.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.daemon import Daemon, running, write_config


def api(
    daemon: Daemon, path: str, method: str = "GET", body: object = None, token: str | None = None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(daemon.api_url + "/api/v1" + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token or daemon.admin_token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


@contextmanager
def edgebox_dhcp(
    workdir: Path, interfaces: list[dict[str, str]], subnets: list[dict[str, Any]], **extra: Any
) -> Iterator[Daemon]:
    dhcp = {"interfaces": interfaces, "subnets": subnets, "rogue_probe_interval": 0, **extra}
    config = write_config(workdir, dhcp=dhcp)
    with running(config) as daemon:
        yield daemon
        daemon.stop()


def leases(daemon: Daemon, token: str | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api(daemon, "/dhcp/leases", token=token)["items"]
    return items
