"""Deploy requests, the plan texts the agent reads, and which agent call each step allows."""

from __future__ import annotations

import pytest

from edgebox.domain.deployment import (
    AGENT_CALLS,
    AgentCallRefused,
    DeployInputError,
    DeployKind,
    Deployment,
    DeployRequest,
    DeployState,
    DeployStep,
    EraseMode,
    KnownDisk,
    check_agent_call,
    check_request,
    deploy_plan,
    erase_plan,
    judge_deploy_done,
    judge_erase_done,
    parse_erase,
    parse_progress,
    render_text,
)

SHA = "ab" * 32
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOk8bq6y olga@laptop"


def deployment(step: DeployStep = DeployStep.WRITING, **fields: object) -> Deployment:
    base: dict[str, object] = dict(
        id=1, machine_id=1, system_id="abc234", kind=DeployKind.DEPLOY,
        state=DeployState.RUNNING, step=step, requested_by="olga", created_at=0.0,
        image_sha256=SHA, image_size=1234, compression="zstd", hostname="web-1",
        seed_secret="s3cr3t",
    )  # fmt: skip
    base.update(fields)
    return Deployment(**base)  # type: ignore[arg-type]


def test_a_request_is_checked_field_by_field() -> None:
    ok = check_request(DeployRequest("olga", " tiny ", "#cloud-config\n", (KEY, " "), disk="sda"))
    assert (ok.image, ok.ssh_keys, ok.disk) == ("tiny", (KEY,), "sda")
    bad = {
        "image": DeployRequest("olga", ""),
        "user_data": DeployRequest("olga", "x", "x" * (256 * 1024 + 1)),
        "ssh_keys[0]": DeployRequest("olga", "x", ssh_keys=("AAAA no type",)),
        "ssh_keys[1]": DeployRequest("olga", "x", ssh_keys=(KEY, KEY + "\nssh-rsa AAAA b")),
        "disk": DeployRequest("olga", "x", disk="/dev/sda"),
    }
    for field, request in bad.items():
        with pytest.raises(DeployInputError) as caught:
            check_request(request)
        assert caught.value.field == field


def test_each_agent_call_is_allowed_only_in_its_steps() -> None:
    allowed = {
        (call, step) for call in AGENT_CALLS for step in DeployStep if step in AGENT_CALLS[call]
    }
    assert allowed == {
        ("deploy/plan", DeployStep.WRITING), ("deploy/progress", DeployStep.WRITING),
        ("deploy/log", DeployStep.WRITING), ("deploy/log", DeployStep.BOOTING),
        ("deploy/done", DeployStep.WRITING), ("deploy/done", DeployStep.BOOTING),
        ("erase/plan", DeployStep.ERASING), ("erase/progress", DeployStep.ERASING),
        ("erase/log", DeployStep.ERASING), ("erase/done", DeployStep.ERASING),
    }  # fmt: skip
    for call, step in [(c, s) for c in AGENT_CALLS for s in DeployStep]:
        d = deployment(step)
        if (call, step) in allowed:
            assert check_agent_call(call, d) is d
        else:
            with pytest.raises(AgentCallRefused, match=f"{call}: not allowed in step"):
                check_agent_call(call, d)
    with pytest.raises(AgentCallRefused, match="this machine is not deploying now"):
        check_agent_call("deploy/plan", None)
    with pytest.raises(AgentCallRefused, match="not erasing disks now"):
        check_agent_call("erase/plan", deployment(DeployStep.ERASING, state=DeployState.FAILED))


def test_the_plans_are_key_value_lines() -> None:
    text = deploy_plan(deployment(), "http://10.0.0.1:5248")
    assert text == (
        f"image_url=http://10.0.0.1:5248/images/{SHA}\nsha256={SHA}\nsize=1234\n"
        "compression=zstd\nkind=raw\ndisk=\nseed_url=http://10.0.0.1:5248/cloud-init/abc234/s3cr3t/\n"
        "system_id=abc234\nhostname=web-1\n"
    )
    assert erase_plan(deployment(erase=EraseMode.SECURE)) == "mode=secure\ndisks=\n"
    with pytest.raises(ValueError, match="line break"):
        render_text([("hostname", "a\nimage_url=evil")])


def test_done_reports_are_judged() -> None:
    d = deployment()
    good = judge_deploy_done(d, {"ok": True, "disk": "nvme0n1", "sha256": SHA})
    assert good.ok and good.result == {"disk": "nvme0n1", "sha256": SHA}
    wrong = judge_deploy_done(d, {"ok": True, "disk": "vda", "sha256": "cd" * 32})
    assert (wrong.ok, wrong.step) == (False, "verify")
    failed = judge_deploy_done(d, {"ok": False, "step": "grow", "error": "growpart: no space"})
    assert (failed.ok, failed.step, failed.error) == (False, "grow", "growpart: no space")
    assert judge_deploy_done(d, {"ok": False}).error == "the agent gave no reason"
    for body, field in (({}, "ok"), ({"ok": True, "sha256": SHA}, "disk"),
                        ({"ok": True, "disk": "vda", "sha256": "x"}, "sha256")):  # fmt: skip
        with pytest.raises(DeployInputError) as caught:
            judge_deploy_done(d, body)
        assert caught.value.field == field
    erased = judge_erase_done({"ok": True, "disks": {"vda": "quick"}})
    assert erased.ok and erased.result == {"disks": {"vda": "quick"}}
    with pytest.raises(DeployInputError, match="disks"):
        judge_erase_done({"ok": True, "disks": ["vda"]})


def test_progress_and_erase_words() -> None:
    assert parse_progress({"step": "write", "done": 5, "total": 9}, erase=False).done == 5
    assert parse_progress({"disk": "vdb", "done": 1}, erase=True).step == "vdb"
    for body in ({"step": "dance"}, {"step": "write", "done": -1}, {"step": "write", "total": "9"}):
        with pytest.raises(DeployInputError):
            parse_progress(body, erase=False)
    assert parse_erase(None) is EraseMode.NONE and parse_erase("full") is EraseMode.FULL
    with pytest.raises(DeployInputError, match="erase: expected one of none, quick, full, secure"):
        parse_erase("shred")


INVENTORY = [KnownDisk("vda", "EB525400-0"), KnownDisk("vdb", "EB525400-1"), KnownDisk("sr0")]


def test_an_erase_report_must_cover_every_disk_of_the_inventory() -> None:
    """The attack: a forged erase/done with "disks": {} moved a machine from Disk erasing to
    Ready after a secure erase request; the next tenant got the previous one's disks."""
    empty = judge_erase_done({"ok": True, "disks": {}}, INVENTORY)
    assert not empty.ok and empty.error == "the agent reported no disk erased"
    partial = judge_erase_done(
        {"ok": True, "disks": {"vda": "secure"}, "serials": {"vda": "EB525400-0"}}, INVENTORY
    )
    assert not partial.ok
    assert partial.error == "not reported erased: vdb (serial EB525400-1), sr0"
    # Names swapped since commissioning: the serials say which disk is which.
    whole = judge_erase_done(
        {"ok": True, "disks": {"vdb": "secure", "vda": "secure", "sr0": "quick"},
         "serials": {"vdb": "EB525400-0", "vda": "EB525400-1", "sr0": ""}},
        INVENTORY,
    )  # fmt: skip
    assert whole.ok
    # A report without serials cannot stand for disks the inventory knows by serial.
    unproven = judge_erase_done({"ok": True, "disks": {"vda": "q", "vdb": "q", "sr0": "q"}},
                                INVENTORY)  # fmt: skip
    assert not unproven.ok and "vda (serial EB525400-0)" in unproven.error
    with pytest.raises(DeployInputError, match="serials"):
        judge_erase_done({"ok": True, "disks": {"vda": "q"}, "serials": ["vda"]}, INVENTORY)


def test_a_deploy_report_must_name_a_disk_of_the_inventory() -> None:
    d = deployment()
    good = {"ok": True, "disk": "vdb", "sha256": SHA, "serial": "EB525400-1"}
    assert judge_deploy_done(d, good, INVENTORY).ok
    elsewhere = {**good, "serial": "SOMEONE-ELSES"}
    refused = judge_deploy_done(d, elsewhere, INVENTORY)
    assert not refused.ok and refused.step == "write"
    assert "not a disk of this machine's inventory" in refused.error
    # No inventory to compare with (never booted edgebox's agent): the hash still decides.
    assert judge_deploy_done(d, elsewhere).ok
