"""Tags over a real temporary database: definitions evaluated over stored inventories, events
in the same transaction, and manual changes of automatic tags refused."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from edgebox.domain.errors import Conflict, InvalidInput, NotFound
from edgebox.domain.lifecycle import Action
from edgebox.domain.models import Event, MachineChanges, MachineFilter
from edgebox.services.machine_service import ActionRequest, MachineService
from edgebox.services.tag_service import TagService
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.tag_store import StoredInventory, TagStore
from edgebox.storage.tags_sql import Evaluation, Verdict
from edgebox.storage.writer import Tx
from tests.conftest import FakeClock

NVME_GPU = {
    "memory": {"total_mib": 262144},
    "disks": [{"name": "nvme0n1", "type": "nvme", "size_bytes": 960 * 10**9}],
    "gpus": [{"vendor": "nvidia", "name": "A100"}],
}
HDD_ONLY = {"memory": {"total_mib": 16384}, "disks": [{"name": "sda", "type": "hdd"}]}


@dataclass
class Site:
    db: Database
    machines: MachineService
    tags: TagService
    events: EventStore

    async def machine(self, mac: str, inventory: Mapping[str, Any] | None = None) -> str:
        machine = await self.machines.create([mac], "olga")
        if inventory is not None:
            await self.store_inventory(machine.system_id, inventory)
        return machine.system_id

    async def store_inventory(self, system_id: str, inventory: Mapping[str, Any]) -> None:
        """What commissioning does: replace the machine's stored inventory."""

        def job(tx: Tx) -> None:
            tx.conn.execute(
                "INSERT INTO machine_inventory (machine_id, data, updated_at) "
                "SELECT id, ?, ? FROM machines WHERE system_id = ? ON CONFLICT (machine_id) "
                "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (json.dumps(inventory), tx.now, system_id),
            )

        await self.db.write(job)

    async def tags_of(self, system_id: str) -> tuple[str, ...]:
        return (await self.machines.get(system_id)).tags

    async def events_after(self, seq: int) -> list[Event]:
        return await self.events.after(seq, 1000)


@pytest.fixture
async def site(db: Database) -> Site:
    return Site(db, MachineService(MachineStore(db)), TagService(TagStore(db)), EventStore(db))


async def test_a_manual_tag_has_no_definition_and_no_machines(site: Site) -> None:
    tag = await site.tags.create("rack-7", "olga", comment="the one by the door")
    assert (tag.name, tag.definition, tag.comment, tag.machine_count) == (
        "rack-7",
        "",
        "the one by the door",
        0,
    )
    assert not tag.automatic
    assert [t.name for t in await site.tags.list_tags()] == ["rack-7"]
    assert await site.tags.get("rack-7") == tag


async def test_creating_a_definition_tags_the_matching_machines_with_events(site: Site) -> None:
    fast = await site.machine("52:54:00:00:00:01", NVME_GPU)
    slow = await site.machine("52:54:00:00:00:02", HDD_ONLY)
    blank = await site.machine("52:54:00:00:00:03")  # never reported an inventory
    seq = await site.events.last_seq()

    tag = await site.tags.create("nvme", "olga", definition=' any(disk.type == "nvme") ')

    assert tag.definition == 'any(disk.type == "nvme")' and tag.automatic
    assert tag.machine_count == 1
    assert await site.tags_of(fast) == ("nvme",)
    assert await site.tags_of(slow) == () and await site.tags_of(blank) == ()
    events = await site.events_after(seq)
    assert [(e.type, e.machine) for e in events] == [("tag.created", None), ("machine.tags", fast)]
    assert events[0].data["machines_added"] == 1 and events[0].data["user"] == "olga"
    assert events[1].data == {"added": ["nvme"], "removed": [], "user": "olga"}
    assert "nvme" in events[1].message and 'any(disk.type == "nvme")' in events[1].message


async def test_a_bad_definition_is_refused_with_its_column_and_nothing_is_stored(
    site: Site,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await site.tags.create("big", "olga", definition="memroy_gib >= 256")
    assert caught.value.field == "definition"
    assert "column 1: unknown name 'memroy_gib'; did you mean 'memory_gib'?" in str(caught.value)
    with pytest.raises(NotFound):
        await site.tags.get("big")
    # The column counts from the text as sent, leading blanks included.
    with pytest.raises(InvalidInput) as caught:
        await site.tags.create("big", "olga", definition="  memory_gib >= 256G")
    assert str(caught.value).startswith("definition: column 17: '256G' is not a number")


async def test_names_are_checked_and_unique(site: Site) -> None:
    with pytest.raises(InvalidInput) as caught:
        await site.tags.create("Big GPUs", "olga")
    assert caught.value.field == "tag"
    await site.tags.create("gpu", "olga")
    with pytest.raises(Conflict):
        await site.tags.create("gpu", "olga", definition="count(gpu) > 0")
    with pytest.raises(InvalidInput) as too_long:
        await site.tags.create("x", "olga", comment="c" * 1001)
    assert too_long.value.field == "comment"


async def test_changing_the_definition_re_evaluates_every_machine(site: Site) -> None:
    fast = await site.machine("52:54:00:00:00:01", NVME_GPU)
    slow = await site.machine("52:54:00:00:00:02", HDD_ONLY)
    await site.tags.create("big", "olga", definition="memory_gib >= 128")
    seq = await site.events.last_seq()

    tag = await site.tags.update("big", "vic", definition="memory_gib >= 8 and memory_gib < 64")

    assert tag.machine_count == 1
    assert await site.tags_of(fast) == () and await site.tags_of(slow) == ("big",)
    events = await site.events_after(seq)
    assert [(e.type, e.machine) for e in events] == [
        ("tag.updated", None),
        ("machine.tags", fast),
        ("machine.tags", slow),
    ]
    assert events[1].data["removed"] == ["big"] and events[2].data["added"] == ["big"]
    assert events[0].data["machines_added"] == 1 and events[0].data["machines_removed"] == 1


async def test_a_comment_change_does_not_re_evaluate(site: Site) -> None:
    machine = await site.machine("52:54:00:00:00:01", NVME_GPU)
    await site.tags.create("gpu", "olga", definition="any(gpu)")
    await site.store_inventory(machine, HDD_ONLY)  # not re-evaluated yet

    tag = await site.tags.update("gpu", "olga", comment="GPU nodes")

    assert tag.comment == "GPU nodes" and tag.definition == "any(gpu)"
    assert await site.tags_of(machine) == ("gpu",)
    # Giving the definition again, unchanged, is the way to ask for a refresh.
    await site.tags.update("gpu", "olga", definition="any(gpu)")
    assert await site.tags_of(machine) == ()


async def test_update_needs_something_and_an_existing_tag(site: Site) -> None:
    await site.tags.create("gpu", "olga")
    with pytest.raises(InvalidInput):
        await site.tags.update("gpu", "olga")
    with pytest.raises(NotFound):
        await site.tags.update("nope", "olga", comment="x")
    with pytest.raises(InvalidInput) as caught:
        await site.tags.update("gpu", "olga", definition="count(gpu) >")
    assert "column 13: expected a value after '>'" in str(caught.value)
    assert (await site.tags.get("gpu")).definition == ""


async def test_clearing_the_definition_keeps_the_machines_as_manual_tags(site: Site) -> None:
    machine = await site.machine("52:54:00:00:00:01", NVME_GPU)
    await site.tags.create("gpu", "olga", definition="any(gpu)")

    tag = await site.tags.update("gpu", "olga", definition="")

    assert not tag.automatic and tag.machine_count == 1
    assert await site.tags_of(machine) == ("gpu",)
    untag = ActionRequest(Action.TAG, "olga", remove_tags=("gpu",))
    assert (await site.machines.act(machine, untag)).tags == ()


async def test_deleting_a_tag_untags_its_machines_with_an_event_each(site: Site) -> None:
    first = await site.machine("52:54:00:00:00:01", NVME_GPU)
    second = await site.machine("52:54:00:00:00:02", NVME_GPU)
    await site.tags.create("gpu", "olga", definition='gpu.vendor == "nvidia"')
    seq = await site.events.last_seq()

    deleted = await site.tags.delete("gpu", "vic")

    assert deleted.machine_count == 2
    assert await site.tags_of(first) == () and await site.tags_of(second) == ()
    events = await site.events_after(seq)
    assert [(e.type, e.machine) for e in events] == [
        ("tag.deleted", None),
        ("machine.tags", first),
        ("machine.tags", second),
    ]
    assert "the tag was deleted" in events[1].message
    with pytest.raises(NotFound):
        await site.tags.delete("gpu", "vic")


async def test_retag_machine_follows_a_new_inventory(site: Site) -> None:
    machine = await site.machine("52:54:00:00:00:01", HDD_ONLY)
    other = await site.machine("52:54:00:00:00:02", NVME_GPU)
    await site.tags.create("nvme", "olga", definition="any(disk.type == 'nvme')")
    await site.tags.create("gpu", "olga", definition="count(gpu) >= 1")
    await site.tags.create("small", "olga", definition="memory_gib < 32")
    await site.tags.create("manual", "olga")
    await site.machines.act(machine, ActionRequest(Action.TAG, "olga", add_tags=("manual",)))
    assert await site.tags_of(machine) == ("manual", "small")
    await site.store_inventory(machine, NVME_GPU)  # commissioning found new hardware
    seq = await site.events.last_seq()

    change = await site.tags.retag_machine(machine)

    assert (change.added, change.removed) == (("gpu", "nvme"), ("small",))
    assert await site.tags_of(machine) == ("gpu", "manual", "nvme")
    assert await site.tags_of(other) == ("gpu", "nvme")
    (event,) = await site.events_after(seq)
    assert (event.type, event.machine) == ("machine.tags", machine)
    assert event.data == {"added": ["gpu", "nvme"], "removed": ["small"]}
    assert "re-evaluated from its inventory" in event.message

    again = await site.tags.retag_machine(machine)
    assert (again.added, again.removed) == ((), ())
    assert await site.events_after(event.seq) == []


async def test_retag_of_a_machine_without_inventory_and_of_no_machine(site: Site) -> None:
    await site.tags.create("any-machine", "olga", definition="true")
    machine = await site.machine("52:54:00:00:00:01")
    change = await site.tags.retag_machine(machine)
    assert change.added == () and await site.tags_of(machine) == ()
    await site.store_inventory(machine, {})
    assert (await site.tags.retag_machine(machine)).added == ("any-machine",)
    with pytest.raises(NotFound):
        await site.tags.retag_machine("nosuch")


async def test_a_stored_definition_that_no_longer_parses_matches_nothing(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    machine = await site.machine("52:54:00:00:00:01", NVME_GPU)
    await site.tags.create("old", "olga", definition="true")
    assert await site.tags_of(machine) == ("old",)

    def job(tx: Tx) -> None:  # as if written by an edgebox with another vocabulary
        tx.conn.execute("UPDATE tags SET definition = 'gpu_count > 0' WHERE name = 'old'")

    await site.db.write(job)
    with caplog.at_level(logging.WARNING):
        change = await site.tags.retag_machine(machine)
    assert change.removed == ("old",)
    assert any("no longer parses" in r.getMessage() for r in caplog.records)


async def test_manual_changes_of_an_automatic_tag_are_refused(site: Site) -> None:
    machine = await site.machine("52:54:00:00:00:01", NVME_GPU)
    bare = await site.machine("52:54:00:00:00:02", HDD_ONLY)
    await site.tags.create("gpu", "olga", definition="any(gpu)")
    await site.tags.create("rack-1", "olga")

    for request in (
        ActionRequest(Action.TAG, "olga", add_tags=("gpu",)),
        ActionRequest(Action.TAG, "olga", remove_tags=("gpu",)),
        ActionRequest(Action.TAG, "olga", add_tags=("rack-1", "gpu")),
    ):
        for target in (machine, bare):
            with pytest.raises(Conflict) as caught:
                await site.machines.act(target, request)
            assert "tag 'gpu' is automatic" in str(caught.value)
            assert "any(gpu)" in str(caught.value)
    with pytest.raises(Conflict):
        await site.machines.update(bare, MachineChanges(tags=("gpu",)), "olga")
    with pytest.raises(Conflict):
        await site.machines.create(["52:54:00:00:00:03"], "olga", tags=["gpu"])
    assert await site.tags_of(machine) == ("gpu",) and await site.tags_of(bare) == ()
    assert len((await site.machines.query(MachineFilter(), 10)).items) == 2


async def test_replacing_a_machines_tags_keeps_its_automatic_ones(site: Site) -> None:
    machine = await site.machine("52:54:00:00:00:01", NVME_GPU)
    await site.tags.create("gpu", "olga", definition="any(gpu)")

    updated = await site.machines.update(machine, MachineChanges(tags=("rack-1",)), "olga")
    assert updated.tags == ("gpu", "rack-1")
    # Writing back what was read, automatic tag included, is fine too.
    updated = await site.machines.update(machine, MachineChanges(tags=("gpu", "rack-2")), "olga")
    assert updated.tags == ("gpu", "rack-2")
    cleared = await site.machines.update(machine, MachineChanges(tags=()), "olga")
    assert cleared.tags == ("gpu",)


async def test_re_evaluation_is_one_transaction(site: Site) -> None:
    """A failure while evaluating one machine leaves no tag, no membership and no event."""
    await site.machine("52:54:00:00:00:01", NVME_GPU)
    await site.machine("52:54:00:00:00:02", NVME_GPU)
    seq = await site.events.last_seq()
    seen: list[object] = []

    def member(inventory: Mapping[str, Any] | None) -> bool:
        seen.append(inventory)
        if len(seen) == 2:
            raise RuntimeError("evaluation failed")
        return True

    store = TagStore(site.db)
    with pytest.raises(RuntimeError):
        await store.create("gpu", "any(gpu)", "", Evaluation(member, {}), lambda tag, changes: [])
    with pytest.raises(NotFound):
        await store.get("gpu")
    assert await site.events_after(seq) == []
    assert (await site.machines.query(MachineFilter(), 10)).items[0].tags == ()


async def test_verdicts_are_trusted_only_for_the_inventory_they_judged(
    site: Site, clock: FakeClock
) -> None:
    judged = await site.machine("52:54:00:00:00:01", HDD_ONLY)
    changed = await site.machine("52:54:00:00:00:02", HDD_ONLY)
    page = await TagStore(site.db).inventories(0, 10)
    stamps = {row.machine_id: row.stamp for row in page}
    assert all(stamp is not None for stamp in stamps.values())
    clock.advance(1)
    await site.store_inventory(changed, NVME_GPU)  # after its verdict was made
    await site.machine("52:54:00:00:00:03", NVME_GPU)  # a machine the verdicts do not know
    asked: list[object] = []

    def member(inventory: Mapping[str, Any] | None) -> bool:
        asked.append(inventory)
        return inventory is not None and "gpus" in inventory

    # Stale verdicts say "no GPU" for both first machines.
    verdicts = {machine_id: Verdict(stamp, False) for machine_id, stamp in stamps.items()}
    tag = await TagStore(site.db).create(
        "gpu", "any(gpu)", "", Evaluation(member, verdicts), lambda tag, changes: []
    )

    assert tag.machine_count == 2
    assert await site.tags_of(judged) == ()  # its verdict was current: trusted
    assert await site.tags_of(changed) == ("gpu",)  # judged again in the write
    assert len(asked) == 2


class RacingStore(TagStore):
    """Commissioning stores a new inventory right after the service has read a page."""

    race: Site | None = None
    target = ""

    async def inventories(self, after: int, limit: int) -> list[StoredInventory]:
        page = await super().inventories(after, limit)
        if page and self.race is not None:
            await self.race.store_inventory(self.target, NVME_GPU)
        return page


async def test_an_inventory_stored_during_evaluation_wins(site: Site, clock: FakeClock) -> None:
    machine = await site.machine("52:54:00:00:00:01", HDD_ONLY)
    store = RacingStore(site.db)
    clock.advance(1)
    store.race, store.target = site, machine

    tag = await TagService(store).create("gpu", "olga", definition="any(gpu)")

    assert tag.machine_count == 1 and await site.tags_of(machine) == ("gpu",)


async def test_evaluation_pages_through_many_machines(site: Site) -> None:
    for i in range(450):
        inventory = NVME_GPU if i % 3 == 0 else HDD_ONLY
        await site.machine(f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}", inventory)

    tag = await site.tags.create("nvme", "olga", definition='disk.type == "nvme"')

    assert tag.machine_count == 150
    page = await site.machines.query(MachineFilter(tags=("nvme",)), 1000)
    assert page.total == 150
