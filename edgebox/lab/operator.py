"""The lab as an operator: the API calls a person would make around the lab's VMs.

Once edgebox listens, the lab issues itself an admin token (revoking the one of its previous
run, so one stays), imports the images it was given, logs the CLI in unless it is logged in to
another server, and sets each VM's BMC — the lab power driver on the VM's QMP socket — as soon
as the VM has enlisted, so that `edgebox commission --all` powers it as a BMC would a server.
Everything goes through the REST API, as a person's script would; nothing is set on an object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from edgebox.domain.auth import Role
from edgebox.lab.vm import VmSpec
from edgebox.services.auth_service import AuthService

TOKEN_NAME = "lab"  # noqa: S105 (the name of the lab's API token, not a secret)
BMC_POLL_S = 1.0


class LabApiError(RuntimeError):
    """An API call of the lab's failed; the message has the call and the API's words."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def issue_lab_token(auth: AuthService) -> str:
    """A fresh admin token for the lab's own calls; the previous run's is revoked."""
    for info in await auth.list_tokens():
        if info.name == TOKEN_NAME and info.user == "admin":
            await auth.revoke(info.id)
    _, token = await auth.create_token(TOKEN_NAME, "admin", Role.ADMIN)
    return token


class LabApi:
    """The REST API with the lab's token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session = session
        self.url = url
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self._session.request(
            method, f"{self.url}/api/v1{path}", json=body, headers=headers
        ) as resp:
            data = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status >= 400:
                message = data.get("message") if isinstance(data, dict) else resp.reason
                raise LabApiError(f"{method} {path}: {resp.status} {message}", resp.status)
            return data

    async def machine_with_mac(self, mac: str) -> dict[str, Any] | None:
        page = await self.call("GET", f"/machines?mac={mac}")
        items = page.get("items") or []
        return dict(items[0]) if items else None

    async def events(self, after: int = 0, machine: str | None = None) -> list[dict[str, Any]]:
        """Every event after `after` (for one machine), following the pages."""
        found: list[dict[str, Any]] = []
        while True:
            query = f"?after={after}&limit=1000" + (f"&machine={machine}" if machine else "")
            items = (await self.call("GET", f"/events{query}")).get("items") or []
            if not items:
                return found
            found += items
            after = int(items[-1]["seq"])


async def import_images(api: LabApi, directories: Sequence[Path], wait_s: float = 600) -> None:
    """Import each signed image directory (already there: nothing to do) and wait until ready."""
    for directory in directories:
        record = await api.call("POST", "/images", {"path": str(directory.resolve())})
        deadline = asyncio.get_running_loop().time() + wait_s
        while record["state"] == "importing":
            if asyncio.get_running_loop().time() > deadline:
                raise LabApiError(f"image {record['name']} still importing after {wait_s:.0f}s")
            await asyncio.sleep(0.5)
            record = await api.call("GET", f"/images/{record['id']}")
        if record["state"] != "ready":
            raise LabApiError(f"image {record['name']}: {record.get('error') or record['state']}")
        print(f"edgebox lab: image {record['name']} ready ({record['id'][:12]})", flush=True)


async def assign_bmcs(
    api: LabApi, vms: Sequence[VmSpec], assigned: dict[str, str], poll_s: float = BMC_POLL_S
) -> None:
    """Give each VM's machine the lab driver as its BMC once it has enlisted; runs until
    cancelled. `assigned` fills with VM name -> system_id (the demo waits on it)."""
    while True:
        for vm in vms:
            if vm.name in assigned or vm.qmp_socket is None:
                continue
            try:
                system_id = await _assign_bmc(api, vm, vm.qmp_socket)
            except (LabApiError, aiohttp.ClientError) as exc:  # said, and tried again
                print(f"edgebox lab: setting {vm.name}'s BMC: {exc}", flush=True)
                continue
            if system_id is not None:
                assigned[vm.name] = system_id
        await asyncio.sleep(poll_s)


async def _assign_bmc(api: LabApi, vm: VmSpec, qmp_socket: Path) -> str | None:
    """The VM's machine, with the lab driver as its BMC; None until it has enlisted."""
    machine = await api.machine_with_mac(vm.mac)
    if machine is None:
        return None
    system_id = str(machine["system_id"])
    bmc = {"driver": "lab", "address": str(qmp_socket)}
    if await _current_bmc(api, system_id) != bmc:
        await api.call("PUT", f"/machines/{system_id}/bmc", bmc)
        print(f"edgebox lab: {vm.name} enlisted as {system_id} ({machine['hostname']}); "
              "its BMC is the lab driver", flush=True)  # fmt: skip
    return system_id


async def _current_bmc(api: LabApi, system_id: str) -> dict[str, str] | None:
    try:
        bmc = await api.call("GET", f"/machines/{system_id}/bmc")
    except LabApiError as exc:
        if exc.status == 404:
            return None
        raise
    return {"driver": bmc["driver"], "address": bmc["address"]}


def cli_login_path(environ: Mapping[str, str]) -> Path:
    """Where the CLI keeps its login (the same rule as edgebox.cli.credentials, which the
    daemon's side may not import)."""
    base = environ.get("XDG_CONFIG_HOME") or ""
    config_home = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return config_home / "edgebox" / "cli.json"


def login_cli(url: str, token: str, environ: Mapping[str, str]) -> str:
    """Log the CLI in to the lab, unless it is logged in to another server; says what it did.
    Runs `edgebox login`, the same command a person would."""
    path = cli_login_path(environ)
    try:
        saved = json.loads(path.read_text()).get("url")
    except (OSError, ValueError, AttributeError):
        saved = None
    if saved not in (None, url):
        return f"the CLI stays logged in to {saved}; to use the lab: edgebox --url {url} ..."
    done = subprocess.run(
        [sys.executable, "-m", "edgebox", "login", url, token],
        capture_output=True, text=True, timeout=60, check=False, env=dict(environ),
    )  # fmt: skip
    if done.returncode != 0:
        return f"could not log the CLI in: {done.stderr.strip()}"
    return f"the CLI is logged in to {url} (as admin, with the lab's token)"
