"""The lab's operator side without VMs: which firmware each VM gets, where its data lives,
whose CLI login it may take, and the demo's timeline from events."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from edgebox.lab import data_dir_of, signing_key, vm_specs
from edgebox.lab.demo import Step, render_timeline, timeline
from edgebox.lab.operator import cli_login_path, login_cli
from edgebox.lab.vm import VmSpec


def test_the_vms_cycle_through_bios_uefi_native_pxe_and_uefi_ipxe(tmp_path: Path) -> None:
    specs = vm_specs(4, tmp_path)
    assert [(s.firmware, s.native_pxe) for s in specs] == [
        ("bios", False),
        ("uefi", True),
        ("uefi", False),
        ("bios", False),
    ]
    assert len({s.mac for s in specs}) == 4


def test_the_data_dir_comes_from_the_flag_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGEBOX_LAB_DATA_DIR", str(tmp_path / "env"))
    assert data_dir_of(argparse.Namespace(data_dir=str(tmp_path / "flag"))) == tmp_path / "flag"
    assert data_dir_of(argparse.Namespace(data_dir=None)) == tmp_path / "env"


def test_the_signing_key_is_made_once(tmp_path: Path) -> None:
    first = signing_key(tmp_path)
    again = signing_key(tmp_path)
    assert first.private_path == again.private_path
    assert first.public_path.read_bytes() == again.public_path.read_bytes()
    assert first.private_path.stat().st_mode & 0o777 == 0o600


def test_a_login_to_another_server_is_left_alone(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = cli_login_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"url": "https://hub.example", "token": "ebx_theirs"}))
    said = login_cli("http://127.0.0.1:5240", "ebx_lab", env)
    assert "stays logged in to https://hub.example" in said
    assert json.loads(path.read_text())["token"] == "ebx_theirs"


def test_the_login_path_follows_xdg_rules() -> None:
    assert cli_login_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/edgebox/cli.json")
    assert cli_login_path({"XDG_CONFIG_HOME": "relative"}).parts[-3:] == (
        ".config",
        "edgebox",
        "cli.json",
    )


class FakeApi:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events

    async def events(self, after: int = 0, machine: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._events if e["machine"] == machine]


async def test_a_timeline_is_the_statuses_from_the_event_log() -> None:
    def event(seconds: int, kind: str, **data: Any) -> dict[str, Any]:
        return {"time": f"2026-12-08T00:00:{seconds:02d}Z", "type": kind, "machine": "abc",
                "data": data}  # fmt: skip

    api = FakeApi([
        event(5, "machine.created", mac="52:54:00:eb:1a:00"),
        event(6, "boot.agent"),
        event(9, "machine.status", to="commissioning"),
        event(30, "machine.status", to="ready"),
    ])  # fmt: skip
    since = 1_796_688_000.0  # 2026-12-08T00:00:00Z
    steps = await timeline(api, "abc", since)  # type: ignore[arg-type]
    assert steps == [Step(5.0, "new"), Step(9.0, "commissioning"), Step(30.0, "ready")]
    text = render_timeline(VmSpec("vm1", "m", firmware="uefi", native_pxe=True), "abc", steps)
    assert text.splitlines()[0] == "vm1 (uefi, native PXE) abc:"
    assert text.splitlines()[-1].split() == ["30.0s", "ready"]


def test_the_lab_refuses_to_start_without_the_loaders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A UEFI VM with the firmware's own PXE needs snponly.efi: say how to get it, up front."""
    import edgebox.lab as lab  # noqa: PLC0415

    monkeypatch.setattr(lab, "REPO", tmp_path)
    monkeypatch.setattr(lab, "missing_requirements", list)
    args = argparse.Namespace(name="t", api_port=0, ephemeral=None)
    with pytest.raises(lab.LabError, match=r"run: scripts/fetch-loaders .*firmware-images"):
        lab.prepare(args, tmp_path / "data")
