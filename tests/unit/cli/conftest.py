"""Fixtures: an isolated config directory, the fake API, and CLI runners pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_edgebox_api import NOW, TOKEN, FakeEdgebox, Invoke, ServerThread, make_invoker

from edgebox.cli import events as events_module


@pytest.fixture(autouse=True)
def isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Keep the user's real login and environment out of every test."""
    config_home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.delenv("EDGEBOX_URL", raising=False)
    monkeypatch.delenv("EDGEBOX_TOKEN", raising=False)
    # Reconnects in tests should not take half a second.
    monkeypatch.setattr(events_module, "FIRST_RETRY_DELAY_S", 0.01)
    return config_home / "edgebox" / "cli.json"


@pytest.fixture
def fake() -> Iterator[FakeEdgebox]:
    fake = FakeEdgebox()
    fake.tokens.append(
        {
            "id": 1,
            "name": "admin",
            "user": "admin",
            "role": "admin",
            "prefix": "ebx_AbCd",
            "created_at": NOW,
            "last_used_at": NOW,
            "revoked_at": None,
        }
    )
    server = ServerThread(fake)
    fake.url = server.start()
    yield fake
    server.stop()


@pytest.fixture
def run_cli(fake: FakeEdgebox) -> Invoke:
    """Run the CLI against the fake, with its URL and token in the environment."""
    return make_invoker({"EDGEBOX_URL": fake.url, "EDGEBOX_TOKEN": TOKEN})


@pytest.fixture
def run_bare() -> Invoke:
    """Run the CLI with no URL or token in the environment."""
    return make_invoker({})
