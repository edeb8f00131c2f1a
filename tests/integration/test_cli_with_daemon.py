"""The CLI against a real `edgebox serve`: login, add, list, act, events, tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.daemon import running, write_config


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "cfg")}
    env.pop("EDGEBOX_URL", None)
    env.pop("EDGEBOX_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "edgebox", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_cli_round_trip(tmp_path: Path) -> None:
    with running(write_config(tmp_path)) as daemon:
        token = daemon.admin_token
        assert token
        cli(tmp_path, "login", daemon.api_url, token)
        added = json.loads(
            cli(tmp_path, "--json", "machines", "add", "52:54:00:aa:00:01", "--tag", "gpu").stdout
        )
        sid = added["system_id"]
        listed = json.loads(cli(tmp_path, "--json", "machines", "list", "--tag", "gpu").stdout)
        assert [m["system_id"] for m in listed] == [sid]
        table = cli(tmp_path, "machines", "list").stdout
        assert sid in table and "new" in table
        broken = cli(tmp_path, "machines", "action", sid, "mark-broken", "--comment", "psu")
        assert "broken" in broken.stdout
        refused = cli(tmp_path, "machines", "action", sid, "lock", check=False)
        assert refused.returncode == 1
        assert "cannot lock a machine that is broken" in refused.stderr
        events = cli(tmp_path, "--json", "events", "--machine", sid).stdout
        types = [e["type"] for e in json.loads(events)]
        assert types == ["machine.created", "machine.status"]
        secret = cli(tmp_path, "token", "create", "ci", "--user", "ci", "--role", "viewer").stdout
        assert secret.strip().startswith("ebx_")
        tokens = json.loads(cli(tmp_path, "--json", "token", "list").stdout)
        assert {t["user"] for t in tokens} == {"admin", "ci"}
        daemon.stop()
    unreachable = cli(tmp_path, "machines", "list", check=False)
    assert unreachable.returncode == 3 and "cannot reach edgebox" in unreachable.stderr
