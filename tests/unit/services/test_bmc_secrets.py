"""A BMC's secrets in the power service, with the real driver kinds: the password, IPMI's k_g
and a webhook's headers are sealed at rest and never shown, kept while the BMC stays where it
was, dropped when it points elsewhere; targets refused by default are refused when set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebox.domain.errors import InvalidInput
from edgebox.domain.settings import PowerSettings
from edgebox.services.machine_service import MachineService
from edgebox.services.power_service import PowerService
from edgebox.services.secret_box import SecretBox
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.power_store import PowerStore
from tests.conftest import FakeClock

K_G = "0a0b0c0d0e0f"
HEADERS = '{"X-Api-Key": "k-secret-123", "X-Site": "lab 2"}'


def power_service(db: Database, clock: FakeClock, tmp: Path, **settings: object) -> PowerService:
    return PowerService(
        PowerSettings(poll_interval=0, **settings),  # type: ignore[arg-type]
        store=PowerStore(db),
        machines=MachineStore(db),
        secrets=SecretBox.open(tmp / "secrets.key"),
        clock=clock,
    )


@pytest.fixture
def power(db: Database, clock: FakeClock, tmp_path: Path) -> PowerService:
    return power_service(db, clock, tmp_path)


async def new_machine(db: Database, mac: str = "52:54:00:20:00:01") -> str:
    return (await MachineService(MachineStore(db)).create([mac], "test")).system_id


async def stored_row(db: Database) -> tuple[bytes, str]:
    row = await db.fetchone("SELECT coalesce(secret_options, x''), options FROM bmcs")
    assert row is not None
    return bytes(row[0]), str(row[1])


async def all_event_text(db: Database) -> str:
    events = await EventStore(db).after(0, 1000)
    return " ".join(f"{e.message} {json.dumps(e.data)}" for e in events)


async def test_k_g_is_sealed_and_shown_only_as_set(db: Database, power: PowerService) -> None:
    sid = await new_machine(db)
    view = await power.set_bmc(
        sid, "ada", driver="ipmi", address="10.0.0.5", username="root", password="pw-1",
        options={"k_g": K_G, "port": 6230},
    )  # fmt: skip
    assert view.has_password and view.secrets == {"has_k_g": True}
    assert "k_g" not in view.options and view.options["port"] == 6230
    sealed, options = await stored_row(db)
    assert K_G.encode() not in sealed and sealed  # sealed, and stored
    assert "k_g" not in json.loads(options)
    assert K_G not in await all_event_text(db) and "pw-1" not in await all_event_text(db)


async def test_webhook_headers_are_sealed_and_shown_by_name(
    db: Database, power: PowerService
) -> None:
    sid = await new_machine(db)
    view = await power.set_bmc(
        sid, "ada", driver="webhook",
        options={"on_url": "http://10.0.0.7/on", "off_url": "http://10.0.0.7/off",
                 "headers": HEADERS},
    )  # fmt: skip
    assert view.secrets == {"has_headers": True, "header_names": ["X-Api-Key", "X-Site"]}
    assert "headers" not in view.options
    sealed, options = await stored_row(db)
    assert b"k-secret-123" not in sealed and "k-secret-123" not in options
    assert "k-secret-123" not in repr(await power.bmc(sid))
    assert "k-secret-123" not in await all_event_text(db)


async def test_secrets_are_kept_while_the_bmc_stays_and_dropped_when_it_moves(
    db: Database, power: PowerService
) -> None:
    sid = await new_machine(db)
    ipmi = {"driver": "ipmi", "address": "10.0.0.5", "username": "root"}
    await power.set_bmc(sid, "admin", password="pw-1", options={"k_g": K_G}, **ipmi)  # type: ignore[arg-type]
    # Same BMC, another user name, no secrets given: they stay.
    view = await power.set_bmc(sid, "olga", **{**ipmi, "username": "ops"})  # type: ignore[arg-type]
    assert view.has_password and view.secrets["has_k_g"] and view.dropped == ()
    # Another address: both dropped, and the event says so (by name).
    view = await power.set_bmc(sid, "olga", **{**ipmi, "address": "10.0.0.6"})  # type: ignore[arg-type]
    assert not view.has_password and not view.secrets["has_k_g"]
    assert view.dropped == ("password", "k_g")
    events = await EventStore(db).after(0, 100)
    last = [e for e in events if e.type == "power.bmc_set"][-1]
    assert "the stored password, k_g dropped" in last.message
    assert last.data["secrets_dropped"] == ["password", "k_g"]


@pytest.mark.parametrize(
    ("change", "dropped"),
    [
        ({"options": {"port": 6231}}, ("password", "k_g")),  # a target option
        ({"driver": "redfish", "address": "10.0.0.5"}, ("password", "k_g")),
        ({"password": "pw-2"}, ()),  # the new password comes with the change
        ({"options": {"k_g": ""}}, ()),  # "" removes it
    ],
)
async def test_what_a_change_drops(
    db: Database, power: PowerService, change: dict[str, object], dropped: tuple[str, ...]
) -> None:
    sid = await new_machine(db)
    await power.set_bmc(
        sid, "admin", driver="ipmi", address="10.0.0.5", password="pw-1", options={"k_g": K_G}
    )
    fields: dict[str, object] = {"driver": "ipmi", "address": "10.0.0.5", **change}
    view = await power.set_bmc(sid, "olga", **fields)  # type: ignore[arg-type]
    assert view.dropped == dropped


async def test_a_moved_bmc_with_a_new_password_keeps_only_the_new_one(
    db: Database, power: PowerService
) -> None:
    sid = await new_machine(db)
    await power.set_bmc(sid, "admin", driver="ipmi", address="10.0.0.5", password="pw-1",
                        options={"k_g": K_G})  # fmt: skip
    view = await power.set_bmc(sid, "olga", driver="ipmi", address="10.0.0.6", password="pw-2")
    assert view.has_password and not view.secrets["has_k_g"] and view.dropped == ("k_g",)


async def test_secret_options_stored_in_plain_text_by_an_older_edgebox_are_sealed(
    db: Database, power: PowerService
) -> None:
    sid = await new_machine(db)
    await power.set_bmc(sid, "admin", driver="ipmi", address="10.0.0.5")
    plain = {"port": 623, "privilege": "administrator", "cipher_suite": 3, "k_g": K_G,
             "timeout": 10}  # fmt: skip
    await db.write(lambda tx: tx.conn.execute("UPDATE bmcs SET options = ?", (json.dumps(plain),)))
    assert (await power.bmc(sid)).secrets == {"has_k_g": True}  # type: ignore[union-attr]
    assert await power.seal_plain_secret_options() == 1
    sealed, options = await stored_row(db)
    assert "k_g" not in json.loads(options) and sealed and K_G.encode() not in sealed
    view = await power.bmc(sid)
    assert view is not None and view.secrets == {"has_k_g": True} and "k_g" not in view.options
    assert await power.seal_plain_secret_options() == 0


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"driver": "ipmi", "address": "127.0.0.1"}, "address",
         "address: 127.0.0.1 is a loopback address"),
        ({"driver": "redfish", "address": "https://[::1]:8443"}, "address", "::1 is a loopback"),
        ({"driver": "ipmi", "address": "localhost"}, "address",
         "localhost resolves to an address that is refused"),
        ({"driver": "webhook", "options": {"on_url": "http://10.0.0.7/on",
                                           "off_url": "http://169.254.169.254/latest/"}},
         "options", "option off_url: 169.254.169.254 is the cloud metadata service"),
    ],
)  # fmt: skip
async def test_refused_targets_are_refused_when_set(
    db: Database, power: PowerService, fields: dict[str, object], field: str, words: str
) -> None:
    sid = await new_machine(db)
    with pytest.raises(InvalidInput) as caught:
        await power.set_bmc(sid, "olga", **fields)  # type: ignore[arg-type]
    assert caught.value.field == field and words in str(caught.value)
    assert "power.allow_targets" in str(caught.value)
    assert await power.bmc(sid) is None


async def test_the_allow_list_opens_a_target(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    power = power_service(db, clock, tmp_path, allow_targets=("127.0.0.0/8",))
    sid = await new_machine(db)
    view = await power.set_bmc(sid, "olga", driver="ipmi", address="127.0.0.1")
    assert view.address == "127.0.0.1"
