"""Release and delete of someone's machine (issue #13): only its owner or an admin. Another
operator gets a 403 that names the owner, one machine at a time or in bulk; the machine is left
as it was. Over the API with the real deploy services (the deploy rig)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine
from edgebox.services.auth_service import AuthService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.site_store import SiteStore
from edgebox.storage.writer import Tx
from tests.conftest import FakeClock
from tests.unit.services.deploy_rig import DeployRig, deploy_rig


@dataclass
class Api:
    client: TestClient
    rig: DeployRig
    olga: dict[str, str]  # operator, the owner
    bob: dict[str, str]  # another operator
    admin: dict[str, str]

    async def call(
        self, who: dict[str, str], method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        resp = await self.client.request(method, f"/api/v1{path}", json=body, headers=who)
        text = await resp.text()
        return resp.status, (await resp.json() if text else None)

    async def owned(self, status: Status = Status.ALLOCATED, owner: str = "olga") -> Machine:
        machine = await self.rig.ready_machine()

        def job(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE machines SET status = ?, owner = ? WHERE id = ?",
                (status.value, owner, machine.id),
            )

        await self.rig.db.write(job)
        return await self.rig.machines.get(machine.system_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Api]:
    async with deploy_rig(db, clock, tmp_path) as rig:
        auth = AuthService(AuthStore(db), clock)
        ctx = ApiContext(
            machines=rig.machines, auth=auth, events=rig.events,
            site=await SiteStore(db).ensure("test-site"), version="test", images=rig.images,
            deploy=rig.parts, storage=db.health,
        )  # fmt: skip
        admin = await auth.bootstrap_admin()
        assert admin is not None
        _, olga = await auth.create_token("olga's", "olga", Role.OPERATOR)
        _, bob = await auth.create_token("bob's", "bob", Role.OPERATOR)
        client = TestClient(TestServer(build_api_app(ctx)))
        await client.start_server()
        try:
            yield Api(client, rig, bearer(olga), bearer(bob), bearer(admin))
        finally:
            await client.close()


@pytest.mark.parametrize("status", [Status.ALLOCATED, Status.DEPLOYED])
async def test_another_operator_may_not_release_or_delete_it(api: Api, status: Status) -> None:
    machine = await api.owned(status)
    sid = machine.system_id
    code, answer = await api.call(api.bob, "POST", f"/machines/{sid}/actions/release", {})
    assert code == 403 and answer["error"] == "forbidden"
    assert answer["message"] == (
        f"machine {machine.hostname} is allocated to olga; only olga or an admin may release it"
        " (ask them, or an admin)"
    )
    code, answer = await api.call(api.bob, "DELETE", f"/machines/{sid}")
    assert code == 403 and "allocated to olga; only olga or an admin may delete it" in str(
        answer["message"]
    )
    after = await api.rig.machines.get(sid)
    assert (after.status, after.owner) == (status, "olga")


async def test_a_bulk_release_refuses_others_machines_by_name_and_does_the_rest(api: Api) -> None:
    theirs = await api.owned()
    mine = await api.owned(owner="bob")
    code, answer = await api.call(
        api.bob, "POST", "/release", {"machines": [theirs.system_id, mine.system_id]}
    )
    assert code == 200 and answer["accepted"] == 1
    refused = {i["system_id"]: i for i in answer["items"] if not i["accepted"]}
    assert list(refused) == [theirs.system_id]
    assert "allocated to olga" in refused[theirs.system_id]["reason"]
    assert (await api.rig.machines.get(theirs.system_id)).status is Status.ALLOCATED
    assert (await api.rig.machines.get(mine.system_id)).status is Status.READY


async def test_the_owner_and_an_admin_may(api: Api) -> None:
    first, second = await api.owned(), await api.owned()
    code, answer = await api.call(api.olga, "POST", f"/machines/{first.system_id}/actions/release")
    assert (code, answer["status"], answer["owner"]) == (200, "ready", None)
    code, answer = await api.call(
        api.admin, "POST", f"/machines/{second.system_id}/actions/release"
    )
    assert (code, answer["status"]) == (200, "ready")
    third = await api.owned(Status.DEPLOYED)
    assert (await api.call(api.admin, "DELETE", f"/machines/{third.system_id}"))[0] == 204
    fourth = await api.owned()
    assert (await api.call(api.olga, "DELETE", f"/machines/{fourth.system_id}"))[0] == 204


async def test_a_machine_nobody_owns_is_anyones_to_delete(api: Api) -> None:
    ready = await api.rig.ready_machine()
    assert (await api.call(api.bob, "DELETE", f"/machines/{ready.system_id}"))[0] == 204
