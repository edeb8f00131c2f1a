"""Deploys end to end in the services, over a real temporary database, a real image cache and
the real machine-facing HTTP app: simulated machines network-boot, their agent writes the image
and their deployed OS fetches its seed, and edgebox takes them where the contract says."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from edgebox.domain.deployment import DeployRequest, DeployState
from edgebox.domain.errors import Conflict, InvalidInput
from edgebox.domain.lifecycle import IllegalTransition, Status
from edgebox.domain.power import PowerOp
from edgebox.services.deploy_agent import SEED_GRACE
from edgebox.services.deploy_service import ImageRefusedForDeploy
from edgebox.storage.database import Database
from edgebox.storage.image_store import ImageState
from tests.conftest import FakeClock
from tests.unit.services.deploy_rig import DeployRig, deploy_rig

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOk8bq6y olga@laptop"
USER_DATA = "#cloud-config\nruncmd: [echo hello]\n"


@pytest.fixture
async def rig(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[DeployRig]:
    async with deploy_rig(db, clock, tmp_path) as rig:
        yield rig


def request(**fields: object) -> DeployRequest:
    base: dict[str, object] = {"actor": "olga", "image": "tiny", "user_data": USER_DATA,
                               "ssh_keys": (KEY,)}  # fmt: skip
    base.update(fields)
    return DeployRequest(**base)  # type: ignore[arg-type]


async def test_a_deploy_from_ready_to_deployed(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    sid = machine.system_id
    after = await rig.parts.deploys.deploy(sid, request(hostname="web-1"))
    assert (after.status, after.owner, after.hostname) == (Status.DEPLOYING, "olga", "web-1")
    assert rig.power.of(sid) == [PowerOp.ON_NETWORK]
    assert rig.image.holders == () and (await rig.images.resolve("tiny")).holders == (
        f"machine:{sid}",
    )

    agent = rig.agent(machine)
    assert await agent.boot() == "deploy"
    plan = await agent.plan()
    disk = rig.image.manifest.disk
    assert plan["sha256"] == disk.sha256 and plan["size"] == str(disk.size)
    assert plan["image_url"].endswith(f"/images/{disk.sha256}")
    assert (plan["compression"], plan["kind"], plan["disk"]) == ("zstd", "raw", "")
    seed = urlsplit(plan["seed_url"]).path  # the deploy's own secret is in it
    assert seed.startswith(f"/cloud-init/{sid}/") and len(seed.split("/")[3]) >= 32
    assert (plan["system_id"], plan["hostname"]) == (sid, "web-1")

    assert await agent.deploy(log=b"writing vda\n") == {"action": "reboot"}
    assert agent.written == rig.built.disk
    assert rig.power.of(sid) == [PowerOp.ON_NETWORK, PowerOp.BOOT_DISK]
    view = await rig.parts.views.deployment(sid)
    assert (view.deployment.step.value, view.deployment.disk, view.log) == (
        "booting", "vda", b"writing vda\n",
    )  # fmt: skip
    assert (view.deployment.agent_step, view.deployment.done) == ("verify", disk.size)
    # Rebooted: the boot script now sends it to its disk, though it is still Deploying.
    assert await agent.boot() == "local"
    assert await rig.status(sid) is Status.DEPLOYING

    status, meta = await agent.cloud_init(sid, "meta-data")
    assert status == 200
    assert meta == f'instance-id: "{sid}"\nlocal-hostname: "web-1"\npublic-keys:\n  - "{KEY}"\n'
    status, vendor = await agent.cloud_init(sid, "vendor-data")
    assert f"{seed}phone-home" in vendor and "post: [instance_id]" in vendor
    status, net = await agent.cloud_init(sid, "network-config")
    assert f'macaddress: "{machine.interfaces[0].mac}"' in net
    assert await rig.status(sid) is Status.DEPLOYING  # meta-data alone proves nothing
    assert await agent.cloud_init(sid, "user-data") == (200, USER_DATA)

    done = await rig.machines.get(sid)
    assert (done.status, done.owner) == (Status.DEPLOYED, "olga")
    assert (await rig.images.resolve("tiny")).holders == ()
    view = await rig.parts.views.deployment(sid)
    assert view.deployment.state is DeployState.SUCCEEDED
    messages = await rig.messages(sid)
    assert any("ready -> allocated (allocate by olga: to deploy it)" in m for m in messages)
    assert any("allocated -> deploying (deploy by olga: image tiny)" in m for m in messages)
    assert any("image tiny written to vda and verified" in m for m in messages)
    assert any("deploying -> deployed (deploy-succeeded: the deployed OS fetched its user-data"
               in m for m in messages)  # fmt: skip
    # Deployed: the seed is still served (cloud-init reads it at every boot), the user-data
    # only for a short grace (cloud-init reads it more than once in its first boot); a
    # phone-home changes nothing more.
    assert await agent.cloud_init(sid, "user-data") == (200, USER_DATA)
    assert (await agent.post(f"{seed}phone-home", data=b"instance_id=x"))[0] == 200
    rig.clock.advance(SEED_GRACE + 1)
    status, later = await agent.cloud_init(sid, "user-data")
    assert status == 200 and USER_DATA not in later and "deployed by" not in later
    assert (await agent.cloud_init(sid, "meta-data"))[0] == 200


async def test_a_phone_home_also_marks_it_deployed(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    await rig.parts.deploys.deploy(machine.system_id, request())
    agent = rig.agent(machine)
    await agent.boot()
    await agent.deploy()
    sid = machine.system_id
    # Without the deploy's secret (or with another), a phone-home is nothing.
    assert (await agent.post(f"/cloud-init/{sid}/phone-home", data=b"x=1"))[0] == 404
    assert (await agent.post(f"/cloud-init/{sid}/forged/phone-home", data=b"x=1"))[0] == 404
    assert await rig.status(sid) is Status.DEPLOYING
    status, _ = await agent.post(f"{rig.seeds[agent.mac]}phone-home", data=b"x=1")
    assert status == 200
    assert await rig.status(sid) is Status.DEPLOYED


async def test_the_seed_needs_the_deploys_secret(rig: DeployRig) -> None:
    """The attack: GET /cloud-init/<system_id>/user-data answered anyone, during and after
    deployment, and the fetch marked a Deploying machine Deployed."""
    machine = await rig.ready_machine()
    sid = machine.system_id
    await rig.parts.deploys.deploy(sid, request())
    agent = rig.agent(machine)
    await agent.boot()
    await agent.deploy()
    for path in (f"/cloud-init/{sid}/user-data", f"/cloud-init/{sid}/x/user-data",
                 f"/cloud-init/{sid}/{'A' * 32}/meta-data"):  # fmt: skip
        resp = await agent.client.get(path)
        assert resp.status == 404 and USER_DATA not in await resp.text()
    assert await rig.status(sid) is Status.DEPLOYING  # none of that counted as the OS


async def test_an_agent_failure_fails_the_deployment_with_its_step_and_log(
    rig: DeployRig,
) -> None:
    machine = await rig.ready_machine()
    sid = machine.system_id
    await rig.parts.deploys.deploy(sid, request())
    agent = rig.agent(machine)
    await agent.boot()
    answer = await agent.deploy(
        fail={"step": "write", "error": "no disk large enough (vda: 1 MiB)"}, log=b"lsblk...\n"
    )
    assert answer == {"action": "poweroff"}
    after = await rig.machines.get(sid)
    assert (after.status, after.owner) == (Status.FAILED_DEPLOYMENT, "olga")
    view = await rig.parts.views.deployment(sid)
    d = view.deployment
    assert (d.state, d.failed_step, d.error) == (
        DeployState.FAILED, "write", "no disk large enough (vda: 1 MiB)",
    )  # fmt: skip
    assert view.log == b"lsblk...\n" and view.log_size == 9
    assert (await rig.images.resolve("tiny")).holders == ()
    messages = await rig.messages(sid)
    assert any("deploying -> failed_deployment (deploy-failed: step write: no disk large enough"
               in m for m in messages)  # fmt: skip
    # Not Deploying any more: the seed is gone, and the agent's calls are refused.
    assert (await agent.cloud_init(sid, "user-data"))[0] == 404
    status, answer = await agent.post("/machine/v1/deploy/plan", data=b"{}")
    assert status == 409 and "not deploying" in answer["message"]


async def test_an_image_read_wrong_fails_verify(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    await rig.parts.deploys.deploy(machine.system_id, request())
    agent = rig.agent(machine)
    await agent.boot()
    assert await agent.deploy(tamper=True) == {"action": "poweroff"}
    view = await rig.parts.views.deployment(machine.system_id)
    assert view.deployment.failed_step == "verify"
    assert "corrupted on the way" in view.deployment.error
    assert view.status is Status.FAILED_DEPLOYMENT


async def test_a_damaged_image_file_refuses_the_deploy_before_any_power_on(
    rig: DeployRig,
) -> None:
    machine = await rig.ready_machine()
    path = rig.images.files.path(rig.image.manifest.disk.sha256)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    damaged = r"damaged in the cache: disk\.raw\.zst: damaged"
    with pytest.raises(ImageRefusedForDeploy, match=damaged):
        await rig.parts.deploys.deploy(machine.system_id, request())
    assert rig.power.requests == []
    after = await rig.machines.get(machine.system_id)
    assert (after.status, after.owner) == (Status.READY, None)
    assert (await rig.images.resolve("tiny")).state is ImageState.FAILED
    with pytest.raises(ImageRefusedForDeploy, match="is failed"):
        await rig.parts.deploys.deploy(machine.system_id, request())


async def test_the_image_files_are_hashed_once_for_many_deploys(rig: DeployRig) -> None:
    machines = [await rig.ready_machine() for _ in range(5)]
    bulk = await rig.parts.deploys.deploy_many(
        request(), system_ids=[m.system_id for m in machines]
    )
    assert [i.accepted for i in bulk.items] == [True] * 5
    await rig.parts.deploys.deploy(  # one more, later: still cached
        (await rig.ready_machine()).system_id, request()
    )
    assert rig.parts.deploys.checks.hashed == 1
    # The file changes on disk (same size): it is hashed again.
    path = rig.images.files.path(rig.image.manifest.disk.sha256)
    path.write_bytes(path.read_bytes())
    await rig.parts.deploys.deploy((await rig.ready_machine()).system_id, request())
    assert rig.parts.deploys.checks.hashed == 2


async def test_the_watchdog_fails_a_silent_deploy_in_either_step(rig: DeployRig) -> None:
    silent, booting = await rig.ready_machine(), await rig.ready_machine()
    for m in (silent, booting):
        await rig.parts.deploys.deploy(m.system_id, request())
    agent = rig.agent(booting)
    await agent.boot()
    await agent.deploy()
    rig.clock.advance(1000)
    assert await rig.parts.deploys.check() == 0
    rig.clock.advance(900)
    assert await rig.parts.deploys.check() == 2
    for m in (silent, booting):
        assert await rig.status(m.system_id) is Status.FAILED_DEPLOYMENT
    never = (await rig.parts.views.deployment(silent.system_id)).deployment
    assert never.failed_step == "writing"
    assert "no call from the machine's agent in the 32 min" in never.error
    late = (await rig.parts.views.deployment(booting.system_id)).deployment
    assert late.failed_step == "booting" and "did not fetch its user-data" in late.error
    assert (await rig.images.resolve("tiny")).holders == ()


async def test_a_deploy_is_refused_when_the_machine_cannot(rig: DeployRig) -> None:
    machine = await rig.ready_machine(status=Status.NEW)
    with pytest.raises(IllegalTransition, match="cannot deploy a machine that is new"):
        await rig.parts.deploys.deploy(machine.system_id, request())
    theirs = await rig.ready_machine()
    await rig.parts.allocation.allocate_one(theirs.system_id, "vic")
    with pytest.raises(Conflict, match="is allocated to vic"):
        await rig.parts.deploys.deploy(theirs.system_id, request())
    with pytest.raises(InvalidInput, match="ssh_keys"):
        await rig.parts.deploys.deploy(theirs.system_id, request(ssh_keys=("not a key",)))
    assert rig.power.requests == []


async def test_abort_takes_a_deploying_machine_back_to_allocated(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    await rig.parts.deploys.deploy(machine.system_id, request())
    after = await rig.parts.deploys.abort(machine.system_id, "olga", "wrong image")
    assert (after.status, after.owner) == (Status.ALLOCATED, "olga")
    assert rig.power.of(machine.system_id) == [PowerOp.ON_NETWORK, PowerOp.OFF]
    assert (await rig.images.resolve("tiny")).holders == ()
    view = await rig.parts.views.deployment(machine.system_id)
    assert view.deployment.state is DeployState.ABORTED
    agent = rig.agent(machine)
    agent.token = "ebb_whatever"
    assert (await agent.post("/machine/v1/deploy/plan", data=b"{}"))[0] == 401


async def test_the_agent_calls_check_purpose_and_step(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    await rig.parts.deploys.deploy(machine.system_id, request())
    agent = rig.agent(machine)
    await agent.boot()
    status, answer = await agent.post("/machine/v1/erase/plan", data=b"{}")
    assert status == 403 and "purpose deploy" in answer["message"]
    status, answer = await agent.post("/machine/v1/deploy/progress", json={"step": "dance"})
    assert status == 400 and "step" in answer["message"]
    status, answer = await agent.post("/machine/v1/deploy/done", json={"ok": True, "disk": "vda"})
    assert status == 400 and "sha256" in answer["message"]
    await agent.deploy()
    status, answer = await agent.post("/machine/v1/deploy/plan", data=b"{}")
    assert status == 409 and "not allowed in step booting" in answer["message"]
    # A repeated done (its answer lost) gets the same answer.
    sha = hashlib.sha256(agent.written).hexdigest()
    status, answer = await agent.post("/machine/v1/deploy/done",
                                      json={"ok": True, "disk": "vda", "sha256": sha})  # fmt: skip
    assert (status, answer) == (200, {"action": "reboot"})


async def test_a_restart_resumes_a_deploy_in_flight(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    async with deploy_rig(db, clock, tmp_path / "one") as rig:
        machine = await rig.ready_machine()
        await rig.parts.deploys.deploy(machine.system_id, request())
        agent = rig.agent(machine)
        await agent.boot()
        await agent.deploy()
    async with deploy_rig(db, clock, tmp_path / "two") as again:
        again.seeds.update(rig.seeds)  # what the first deploy wrote to the disk
        assert again.parts.deploys.tracker.count == 1
        assert await again.agent(machine).boot() == "local"
        assert (await again.agent(machine).cloud_init(machine.system_id, "user-data"))[0] == 200
        assert await again.status(machine.system_id) is Status.DEPLOYED


async def test_a_manual_machine_is_not_asked_to_boot_from_disk(rig: DeployRig) -> None:
    """A person would be asked to change the firmware's boot order for nothing: the boot
    script's local-boot answer already sends a network-first machine to its disk."""
    machine = await rig.ready_machine(bmc="manual")
    await rig.parts.deploys.deploy(machine.system_id, request())
    agent = rig.agent(machine)
    await agent.boot()
    assert await agent.deploy() == {"action": "reboot"}
    assert rig.power.of(machine.system_id) == [PowerOp.ON_NETWORK]
    assert await agent.boot() == "local"


async def test_a_deleted_deploying_machine_gives_its_image_back(rig: DeployRig) -> None:
    machine = await rig.ready_machine()
    await rig.parts.deploys.deploy(machine.system_id, request())
    await rig.machines.delete(machine.system_id, "olga")
    assert (await rig.images.resolve("tiny")).holders == (f"machine:{machine.system_id}",)
    rig.clock.advance(1800)
    assert await rig.parts.deploys.check() == 0  # nothing left to fail
    assert (await rig.images.resolve("tiny")).holders == ()
    assert rig.parts.deploys.tracker.count == 0
