"""The boot window rule, attack by attack (docs/security.md): nobody on the provisioning network
gets a known machine's token on request, a window is claimed once, by one address, and a token
works only from the address it was handed to."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.domain.models import MachineFilter
from edgebox.domain.settings import BootSettings
from edgebox.net.machine_http import build_machine_app
from edgebox.services.boot_resources import BootResources
from edgebox.services.boot_service import BootService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.loaders import check_loaders
from edgebox.services.machine_service import MachineService
from edgebox.storage.boot_store import BootStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.writer import Tx
from tests.boot_tokens import fetch_token, token_from_cpio, token_url
from tests.conftest import FakeClock
from tests.unit.services.test_boot_service import MAC, Rig, inventory, make_build

VICTIM = "52:54:00:00:00:0a"
INTRUDER = "52:54:00:00:00:66"
HERE = "127.0.0.1"  # the test client's address


class FakeLeases:
    def __init__(self) -> None:
        self.held: dict[str, frozenset[str]] = {}

    def mac_for_ip(self, ip: str) -> str | None:
        return next((mac for mac, ips in self.held.items() if ip in ips), None)

    def ips_of_mac(self, mac: str) -> frozenset[str]:
        return self.held.get(mac, frozenset())


class WindowRig(Rig):
    leases: FakeLeases

    async def known_machine(self, status: str = "new") -> str:
        """A machine for VICTIM, enlisted, then put in `status` as edgebox would (the time its
        status began moves on, which opens a new window)."""
        token = await self.token(VICTIM)
        _, body = await self.agent("enlist", token, {"inventory": inventory(VICTIM)})
        await self.move(body["system_id"], status)
        return str(body["system_id"])

    async def move(self, system_id: str, status: str) -> None:
        self.clock.advance(1)

        def job(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE machines SET status = ?, status_changed_at = ? WHERE system_id = ?",
                (status, tx.now, system_id),
            )

        await self.db.write(job)

    async def machine(self, mac: str = VICTIM) -> Any:
        page = await self.machines.query(MachineFilter(mac=mac), 1)
        return page.items[0] if page.items else None

    async def script_from(self, source: str, mac: str = VICTIM) -> str:
        base = f"http://{self.client.host}:{self.client.port}"
        return await self.boot.script(mac, base, await self.machine(mac), source)

    async def events(self, kind: str) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT level, message, data FROM events WHERE type = ? ORDER BY seq", (kind,)
        )
        return [{"level": r[0], "message": r[1], **json.loads(r[2])} for r in rows]


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[WindowRig]:
    resources = BootResources(tmp_path / "resources")
    resources.import_dir(make_build(tmp_path))
    leases = FakeLeases()
    boot = BootService(
        BootSettings(token_ttl=600),
        store=BootStore(db),
        events=EventService(EventStore(db), EventBus()),
        clock=clock,
        resources=resources,
        loaders=check_loaders(tmp_path / "no-loaders"),
        leases=leases,
    )
    machines = MachineService(MachineStore(db))
    client = TestClient(TestServer(build_machine_app(boot, machines)))
    await client.start_server()
    try:
        rig = WindowRig(client, boot, machines, db, clock)
        rig.leases = leases
        yield rig
    finally:
        await client.close()


async def test_a_machine_edgebox_is_not_working_on_gets_no_token(rig: WindowRig) -> None:
    """The attack: GET /boot/ipxe?mac=<victim> minted a fresh token for a Ready machine."""
    await rig.known_machine("ready")
    script = await rig.script(VICTIM)
    assert "edgebox.purpose=poweroff" in script
    assert token_url(script) is None and "edgebox.token" not in script


async def test_a_window_is_claimed_once_and_a_second_address_gets_nothing(
    rig: WindowRig,
) -> None:
    await rig.known_machine("commissioning")
    first = await rig.script_from("10.0.0.7")  # the intruder is quicker
    assert token_url(first) is not None
    # The real machine asks from its own address: refused, and the log says who holds it.
    second = await rig.script_from(HERE)
    assert token_url(second) is None and "no boot token" in second
    [refusal] = await rig.events("boot.refused")
    assert refusal["level"] == "error" and refusal["source"] == HERE
    assert refusal["holder"] == "10.0.0.7" and refusal["reason"] == "claimed"
    assert "10.0.0.7 already claimed this boot window" in refusal["message"]
    # The holder may ask again (a reboot within the same step) and gets a fresh token.
    assert token_url(await rig.script_from("10.0.0.7")) is not None


async def test_a_new_status_opens_a_new_window(rig: WindowRig) -> None:
    system_id = await rig.known_machine("commissioning")
    assert token_url(await rig.script_from("10.0.0.7")) is not None
    assert token_url(await rig.script_from(HERE)) is None
    await rig.move(system_id, "testing")  # edgebox started another step: a new window
    assert token_url(await rig.script_from(HERE)) is not None


async def test_in_server_mode_only_the_leased_address_may_claim(rig: WindowRig) -> None:
    await rig.known_machine("deploying")
    rig.leases.held[VICTIM] = frozenset({"10.0.0.100"})
    refused = await rig.script_from("10.0.0.66")  # first, but not the lease's address
    assert token_url(refused) is None
    [event] = await rig.events("boot.refused")
    assert event["reason"] == "wrong_source" and "edgebox leased" in event["message"]
    assert token_url(await rig.script_from("10.0.0.100")) is not None


async def test_the_token_initrd_is_fetched_once_by_the_claimant_only(rig: WindowRig) -> None:
    await rig.known_machine("commissioning")
    script = await rig.script(VICTIM)  # from the test client's address
    path = token_url(script)
    assert path is not None
    claim = path.rsplit("/", 1)[1]
    assert rig.boot.token_cpio(claim, "10.0.0.66") is None  # another address: nothing
    resp = await rig.client.get(path)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert token_from_cpio(await resp.read()).startswith("ebb_")
    again = await rig.client.get(path)
    assert again.status == 404


async def test_a_token_works_only_from_the_address_it_was_handed_to(rig: WindowRig) -> None:
    await rig.known_machine("commissioning")
    token = await fetch_token(rig.client, await rig.script(VICTIM))
    status, _ = await rig.agent("heartbeat", token, {})
    assert status == 200
    with pytest.raises(Exception, match=r"handed to 127\.0\.0\.1"):
        await rig.boot.authenticate(token, "10.0.0.66")


async def test_an_enlisting_agent_cannot_take_another_machines_nic(rig: WindowRig) -> None:
    """The attack: an enlist listing the victim's MAC among its NICs took the victim's
    record. Now the intruder gets a machine of its own and the victim keeps its NIC."""
    victim = await rig.known_machine("ready")
    token = await fetch_token(rig.client, await rig.script(INTRUDER))
    forged = inventory(INTRUDER)
    forged["nics"].append({"name": "eth1", "mac": VICTIM, "driver": "e1000"})
    status, body = await rig.agent("enlist", token, {"boot_mac": INTRUDER, "inventory": forged})
    assert status == 200 and body["system_id"] != victim
    assert {i.mac for i in (await rig.machine(VICTIM)).interfaces} == {VICTIM}
    assert (await rig.machine(VICTIM)).system_id == victim
    [warning] = await rig.events("machine.foreign_nics")
    assert warning["level"] == "warning" and warning["macs"] == [VICTIM]


async def test_a_token_for_an_unknown_mac_cannot_enlist_into_a_known_one(rig: WindowRig) -> None:
    token = await fetch_token(rig.client, await rig.script(MAC))  # unknown: may create only
    status, body = await rig.agent("enlist", token, {"inventory": inventory(MAC)})
    assert status == 200 and body["status"] == "new"  # nobody had the MAC: created
    # The same token again: the MAC is a known machine's now, which this token cannot touch.
    status, again = await rig.agent("enlist", token, {"inventory": inventory(MAC)})
    assert status == 403 and f"belongs to machine {body['system_id']}" in again["message"]


async def test_unauthenticated_requests_are_limited_per_address(tmp_path: Path) -> None:
    """The attack: GET /boot/ipxe?mac=<random> 600 times in 0.6 s added 600 rows. Now an
    address gets its burst, then 429 with Retry-After; a credential is not counted."""
    from edgebox.domain.rate_limit import SourceLimiter  # noqa: PLC0415

    app = build_machine_app(limiter=SourceLimiter(rate=1.0, burst=5))
    async with TestClient(TestServer(app)) as client:
        statuses = [(await client.get("/health")).status for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        refused = await client.get("/boot/ipxe?mac=52:54:00:00:00:01")
        assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
        authed = await client.post(
            "/machine/v1/heartbeat", json={}, headers={"Authorization": "Bearer x"}
        )
        assert authed.status != 429


async def test_expired_tokens_are_deleted_as_new_ones_are_issued(rig: WindowRig) -> None:
    for i in range(5):  # five unknown MACs, each handed a token
        await rig.script(f"52:54:00:00:01:{i:02x}")
    assert (await rig.db.fetchone("SELECT count(*) FROM boot_tokens"))[0] == 5
    rig.clock.advance(601)  # past the rig's token_ttl
    await rig.script("52:54:00:00:02:00")
    assert (await rig.db.fetchone("SELECT count(*) FROM boot_tokens"))[0] == 1
