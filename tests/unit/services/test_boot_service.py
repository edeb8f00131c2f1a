"""Boot scripts per machine state, per-boot agent tokens, enlistment and identity matching,
served through the machine-facing HTTP app over a real database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.domain.enlistment import usable_serial, usable_uuid
from edgebox.domain.hardware import summary_of
from edgebox.domain.models import MachineFilter
from edgebox.domain.settings import BootSettings
from edgebox.net.machine_http import build_machine_app
from edgebox.services.boot_resources import BootResourceError, BootResources
from edgebox.services.boot_service import BootService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.loaders import check_loaders
from edgebox.services.machine_service import MachineService
from edgebox.storage.boot_store import BootStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from tests.boot_tokens import fetch_token
from tests.conftest import FakeClock

MAC = "52:54:00:00:00:0a"


def make_build(root: Path, kernel: bytes = b"kernel", initrd: bytes = b"initrd") -> Path:
    build = root / "build"
    build.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, data in (("vmlinuz", kernel), ("initrd.gz", initrd)):
        (build / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (build / "manifest.json").write_text(json.dumps({"files": files, "kernel_version": "6.1.0"}))
    return build


@dataclass
class Rig:
    client: TestClient
    boot: BootService
    machines: MachineService
    db: Database
    clock: FakeClock

    async def script(self, mac: str = MAC) -> str:
        resp = await self.client.get(f"/boot/ipxe?mac={mac}")
        assert resp.status == 200
        return await resp.text()

    async def token(self, mac: str = MAC) -> str:
        """Boot: the script, then the token's own initrd, as iPXE fetches them."""
        return await fetch_token(self.client, await self.script(mac))

    async def agent(self, call: str, token: str | None, body: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await self.client.post(f"/machine/v1/{call}", json=body, headers=headers)
        return resp.status, await resp.json()


def inventory(mac: str = MAC, uuid: str = "", serial: str = "") -> dict[str, Any]:
    return {
        "dmi": {"vendor": "QEMU", "product": "Standard PC", "serial": serial, "uuid": uuid},
        "cpu": {"model": "QEMU Virtual CPU", "sockets": 1, "cores": 2, "threads": 2},
        "memory_mib": 512,
        "disks": [{"name": "vda", "size_bytes": 2 << 30, "model": "", "serial": "",
                   "rotational": False}],
        "nics": [{"name": "eth0", "mac": mac, "driver": "virtio_net", "link": True,
                  "speed_mbps": -1}],
    }  # fmt: skip


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Rig]:
    resources = BootResources(tmp_path / "resources")
    resources.import_dir(make_build(tmp_path))
    events = EventService(EventStore(db), EventBus())
    machines = MachineService(MachineStore(db))
    boot = BootService(
        BootSettings(token_ttl=600),
        store=BootStore(db),
        events=events,
        clock=clock,
        resources=resources,
        loaders=check_loaders(tmp_path / "no-loaders"),
    )
    client = TestClient(TestServer(build_machine_app(boot, machines)))
    await client.start_server()
    try:
        yield Rig(client, boot, machines, db, clock)
    finally:
        await client.close()


async def test_an_unknown_mac_enlists(rig: Rig) -> None:
    script = await rig.script()
    assert script.startswith("#!ipxe\n")
    assert "edgebox.purpose=enlist" in script and f"edgebox.mac={MAC}" in script
    assert f"edgebox.url=http://{rig.client.host}:{rig.client.port}" in script
    digest = rig.boot.resources.current().digest  # type: ignore[union-attr]
    assert f"/boot-resources/{digest}/vmlinuz?mac={MAC} initrd=initrd.gz" in script
    assert f"initrd --name initrd.gz http://{rig.client.host}" in script


async def test_enlist_creates_then_matches(rig: Rig) -> None:
    token = await rig.token()
    status, body = await rig.agent("enlist", token, {"boot_mac": MAC, "inventory": inventory()})
    assert status == 200 and body["status"] == "new"
    page = await rig.machines.query(MachineFilter(mac=MAC), 5)
    assert [m.system_id for m in page.items] == [body["system_id"]]
    # The list carries the hardware the inventory names (cores, memory, storage).
    assert page.items[0].hardware == summary_of(inventory())
    assert page.items[0].hardware.cores == 2 and page.items[0].hardware.memory_mib == 512
    # Booting again: the same machine, matched by MAC, not a second one.
    token = await rig.token()
    status, again = await rig.agent("enlist", token, {"boot_mac": MAC, "inventory": inventory()})
    assert again["system_id"] == body["system_id"]
    assert (await rig.machines.query(MachineFilter(), 10)).total == 1


async def duplicate_flags(rig: Rig) -> list[dict[str, Any]]:
    rows = await rig.db.fetchall(
        "SELECT machine, data FROM events WHERE type = 'machine.possible_duplicate' ORDER BY seq"
    )
    return [{"machine": row[0], **json.loads(row[1])} for row in rows]


async def test_a_known_uuid_on_a_new_mac_is_flagged_never_merged(rig: Rig) -> None:
    """A replaced NIC looks like an intruder copying a victim's SMBIOS UUID: the new MAC gets
    a New machine of its own and an admin is told; the known machine is untouched."""
    uuid = "6a0b9d2e-5d0c-4f4c-9c52-2f6f9d1a7e11"
    token = await rig.token()
    _, first = await rig.agent(
        "enlist", token, {"boot_mac": MAC, "inventory": inventory(uuid=uuid)}
    )
    new_mac = "52:54:00:00:00:0b"
    token = await rig.token(new_mac)
    status, second = await rig.agent(
        "enlist", token, {"boot_mac": new_mac, "inventory": inventory(new_mac, uuid=uuid)}
    )
    assert status == 200 and second["system_id"] != first["system_id"]
    original = await rig.machines.get(first["system_id"])
    assert {i.mac for i in original.interfaces} == {MAC}
    assert await duplicate_flags(rig) == [
        {"machine": second["system_id"], "duplicate_of": first["system_id"], "by": "smbios_uuid"}
    ]


async def test_a_known_serial_is_flagged_but_a_placeholder_is_not(rig: Rig) -> None:
    junk = "03000200-0400-0500-0006-000700080009"
    token = await rig.token()
    _, first = await rig.agent(
        "enlist", token, {"boot_mac": MAC, "inventory": inventory(uuid=junk, serial="SN-77")}
    )
    other = "52:54:00:00:00:0c"
    token = await rig.token(other)
    _, second = await rig.agent(
        "enlist",
        token,
        {"boot_mac": other, "inventory": inventory(other, uuid=junk, serial="SN-77")},
    )
    assert second["system_id"] != first["system_id"]
    # A placeholder serial matches nothing: a different machine, and no flag.
    third_mac = "52:54:00:00:00:0d"
    token = await rig.token(third_mac)
    _, third = await rig.agent(
        "enlist", token,
        {"boot_mac": third_mac, "inventory": inventory(third_mac, serial="To Be Filled By O.E.M.")},
    )  # fmt: skip
    assert third["system_id"] not in {first["system_id"], second["system_id"]}
    assert [(f["machine"], f["by"]) for f in await duplicate_flags(rig)] == [
        (second["system_id"], "serial")
    ]


async def test_tokens_speak_for_their_mac_only_and_expire(rig: Rig) -> None:
    token = await rig.token()
    other = "52:54:00:00:00:0e"
    status, body = await rig.agent(
        "enlist", token, {"boot_mac": other, "inventory": inventory(other)}
    )
    assert status == 403 and f"for {MAC}" in body["message"]
    status, body = await rig.agent("heartbeat", None, {})
    assert status == 401
    status, body = await rig.agent("heartbeat", "ebb_forged", {})
    assert status == 401 and "unknown boot token" in body["message"]
    # A newer boot of the same NIC supersedes the old token.
    newer = await rig.token()
    assert (await rig.agent("heartbeat", token, {}))[0] == 401
    assert (await rig.agent("heartbeat", newer, {}))[0] == 200
    rig.clock.advance(601)
    status, body = await rig.agent("heartbeat", newer, {})
    assert status == 401 and "expired" in body["message"]


async def test_a_remembered_token_is_still_superseded_and_expires(rig: Rig) -> None:
    token = await rig.token()
    status, _ = await rig.agent("enlist", token, {"boot_mac": MAC, "inventory": inventory()})
    assert status == 200
    for _ in range(3):  # enlisted: the call's identity is now remembered between calls
        assert (await rig.agent("heartbeat", token, {}))[0] == 200
    newer = await rig.token()
    status, body = await rig.agent("heartbeat", token, {})
    assert status == 401 and "unknown boot token" in body["message"]
    assert (await rig.agent("heartbeat", newer, {}))[0] == 200
    assert (await rig.agent("heartbeat", newer, {}))[0] == 200
    rig.clock.advance(601)
    status, body = await rig.agent("heartbeat", newer, {})
    assert status == 401 and "expired" in body["message"]


async def test_heartbeat_tells_an_enlisting_agent_to_power_off(rig: Rig) -> None:
    token = await rig.token()
    assert (await rig.agent("heartbeat", token, {"state": "idle"}))[1] == {"action": "poweroff"}


async def test_script_follows_the_machine_state(rig: Rig) -> None:
    token = await rig.token()
    _, made = await rig.agent("enlist", token, {"boot_mac": MAC, "inventory": inventory()})

    def set_status(value: str):  # type: ignore[no-untyped-def]
        def job(tx):  # type: ignore[no-untyped-def]
            tx.conn.execute(
                "UPDATE machines SET status = ? WHERE system_id = ?", (value, made["system_id"])
            )

        return job

    expected = {
        "commissioning": "edgebox.purpose=commission",
        "testing": "edgebox.purpose=test",
        "disk_erasing": "edgebox.purpose=erase",
        "rescue_mode": "edgebox.purpose=rescue",
        "ready": "edgebox.purpose=poweroff",
        "allocated": "edgebox.purpose=poweroff",
        "deployed": "exit 1",
    }
    for status, needle in expected.items():
        await rig.db.write(set_status(status))
        script = await rig.script()
        assert needle in script, (status, script)
    assert "kernel" not in script  # deployed: local disk, no ephemeral environment


async def test_resources_are_served_with_range(rig: Rig) -> None:
    digest = rig.boot.resources.current().digest  # type: ignore[union-attr]
    resp = await rig.client.get(f"/boot-resources/{digest}/vmlinuz?mac={MAC}")
    assert resp.status == 200 and await resp.read() == b"kernel"
    resp = await rig.client.get(
        f"/boot-resources/{digest}/initrd.gz", headers={"Range": "bytes=2-"}
    )
    assert resp.status == 206 and await resp.read() == b"itrd"
    assert (await rig.client.get("/boot-resources/" + "0" * 64 + "/vmlinuz")).status == 404
    assert (await rig.client.get("/loaders/undionly.kpxe")).status == 404


async def test_the_boot_timeline(rig: Rig) -> None:
    token = await rig.token()
    digest = rig.boot.resources.current().digest  # type: ignore[union-attr]
    await rig.client.get(f"/boot-resources/{digest}/vmlinuz?mac={MAC}")
    await rig.client.get(f"/boot-resources/{digest}/initrd.gz?mac={MAC}")
    await rig.agent("enlist", token, {"boot_mac": MAC, "inventory": inventory()})
    events = await EventService(EventStore(rig.db), EventBus()).boot_events(MAC)
    assert [e.data["step"] for e in events] == ["script", "kernel", "initrd", "agent"]


def test_import_refuses_a_tampered_build(tmp_path: Path) -> None:
    build = make_build(tmp_path)
    (build / "initrd.gz").write_bytes(b"evil")
    with pytest.raises(BootResourceError, match="does not match its manifest"):
        BootResources(tmp_path / "r").import_dir(build)
    assert BootResources(tmp_path / "r").current() is None


def test_placeholders_identify_nothing() -> None:
    assert usable_uuid("03000200-0400-0500-0006-000700080009") == ""
    assert (
        usable_uuid("6A0B9D2E-5D0C-4F4C-9C52-2F6F9D1A7E11")
        == "6a0b9d2e-5d0c-4f4c-9c52-2f6f9d1a7e11"
    )
    assert usable_serial("To Be Filled By O.E.M.") == ""
    assert usable_serial("0000000") == ""
    assert usable_serial("CZ12345") == "CZ12345"
