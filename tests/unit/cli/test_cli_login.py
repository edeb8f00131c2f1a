"""Login, logout, status; where the URL and token come from; errors and exit codes."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from fake_edgebox_api import SITE, TOKEN, FakeEdgebox, Invoke

from edgebox.cli.credentials import (
    DEFAULT_URL,
    SavedLogin,
    Target,
    login_file_path,
    normalize_url,
    resolve_target,
)
from edgebox.cli.main import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_login_checks_the_token_and_saves_it_for_the_user_only(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    result = run_bare("login", fake.url + "/", TOKEN)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"Logged in to lab-1 ({SITE['site_id']}) at {fake.url}.\n"
    assert fake.last("GET").path == "/api/v1/site"
    assert fake.last("GET").auth == f"Bearer {TOKEN}"
    assert json.loads(isolated_config.read_text()) == {"url": fake.url, "token": TOKEN}
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    assert stat.S_IMODE(isolated_config.parent.stat().st_mode) == 0o700


def test_login_again_keeps_the_file_private(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("{}")
    isolated_config.chmod(0o644)

    result = run_bare("login", fake.url, TOKEN)

    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    assert os.listdir(isolated_config.parent) == ["cli.json"]


def test_login_prompts_for_a_missing_token(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    result = run_bare("login", fake.url, input=f"{TOKEN}\n")

    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert json.loads(isolated_config.read_text())["token"] == TOKEN


def test_login_with_a_bad_token_saves_nothing(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    result = run_bare("login", fake.url, "ebx_wrong")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: missing or invalid API token")
    assert not isolated_config.exists()


def test_login_to_an_unreachable_server_exits_3(run_bare: Invoke, isolated_config: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_bare("login", url, TOKEN)

    assert result.exit_code == 3
    assert result.stderr == f"error: cannot reach edgebox at {url}: connection refused\n"
    assert not isolated_config.exists()


def test_login_rejects_a_url_that_is_not_http(run_bare: Invoke) -> None:
    result = run_bare("login", "box.example:5240", TOKEN)

    assert result.exit_code == 2
    assert "not an http:// or https:// URL" in result.stderr


def test_the_saved_login_is_used_and_logout_forgets_it(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    assert run_bare("login", fake.url, TOKEN).exit_code == 0

    listed = run_bare("machines", "list")
    assert listed.exit_code == 0, listed.output
    assert fake.last("GET").auth == f"Bearer {TOKEN}"

    logged_out = run_bare("logout")
    assert logged_out.exit_code == 0
    assert not isolated_config.exists()
    assert run_bare("logout").stdout == "Not logged in.\n"


def test_no_token_anywhere_says_how_to_get_one(run_bare: Invoke) -> None:
    result = run_bare("machines", "list")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: no API token: run 'edgebox login URL TOKEN' or set EDGEBOX_TOKEN\n"
    )


def test_flag_beats_environment_beats_saved_login(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text(json.dumps({"url": fake.url, "token": "ebx_saved"}))

    run_bare("machines", "list")
    run_bare("machines", "list", EDGEBOX_TOKEN="ebx_env")
    run_bare("--token", TOKEN, "machines", "list", EDGEBOX_TOKEN="ebx_env")

    assert [r.auth for r in fake.requests] == [
        "Bearer ebx_saved",
        "Bearer ebx_env",
        f"Bearer {TOKEN}",
    ]


def test_the_saved_token_is_not_sent_to_another_server(
    fake: FakeEdgebox, run_bare: Invoke, isolated_config: Path
) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text(json.dumps({"url": "http://other:5240", "token": "ebx_saved"}))

    result = run_bare("--url", fake.url, "machines", "list")

    assert result.exit_code == 2
    assert "the saved login is for http://other:5240" in result.stderr
    assert fake.requests == []


def test_a_damaged_login_file_is_reported_and_logout_still_works(
    run_bare: Invoke, isolated_config: Path
) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("not json")

    result = run_bare("machines", "list")
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: {isolated_config} is not a saved edgebox login; run 'edgebox logout'\n"
    )

    assert run_bare("logout").exit_code == 0
    assert not isolated_config.exists()


def test_an_unreachable_server_exits_3_with_the_url(run_bare: Invoke) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_bare("--url", url, "--token", TOKEN, "machines", "show", "x")

    assert result.exit_code == 3
    assert result.stderr == f"error: cannot reach edgebox at {url}: connection refused\n"


def test_an_error_page_that_is_not_json_still_gives_a_clean_error(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    fake.overrides[("GET", "/api/v1/machines")] = (502, "<html>Bad Gateway</html>")

    result = run_cli("machines", "list")

    assert result.exit_code == 1
    assert result.stderr == "error: HTTP 502 Bad Gateway\n"


def test_status_shows_health_and_site(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("status")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"url:           {fake.url}",
        "health:        ok",
        "version:       0.1.0",
        f"site:          lab-1 ({SITE['site_id']})",
        "site created:  2026-11-26T05:38:53Z",
        "token:         accepted",
    ]
    assert fake.paths() == ["/api/v1/health", "/api/v1/site"]


def test_status_without_a_token_shows_health_only(fake: FakeEdgebox, run_bare: Invoke) -> None:
    result = run_bare("--json", "status", EDGEBOX_URL=fake.url)

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["site"] is None
    assert shown["health"]["site_name"] == "lab-1"
    assert fake.paths() == ["/api/v1/health"]
    assert fake.requests[0].auth is None


def test_main_returns_exit_codes_and_prints_one_line_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["machines", "list"]) == 2
    assert capsys.readouterr().err == (
        "error: no API token: run 'edgebox login URL TOKEN' or set EDGEBOX_TOKEN\n"
    )

    port = free_port()
    assert main(["--url", f"http://127.0.0.1:{port}", "--token", "t", "status"]) == 3
    assert "connection refused" in capsys.readouterr().err

    assert main(["--help"]) == 0
    assert "edgebox serve [--config PATH]" in capsys.readouterr().out

    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_serve_is_not_a_cli_command() -> None:
    assert main(["serve"]) == 2


def test_login_file_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert login_file_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "edgebox/cli.json"
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".config/edgebox/cli.json"
    assert login_file_path({}) == expected
    assert login_file_path({"XDG_CONFIG_HOME": "relative/dir"}) == expected


def test_normalize_url() -> None:
    assert normalize_url(" http://box:5240/ ") == "http://box:5240"
    assert normalize_url("https://box/api/v1/") == "https://box"
    with pytest.raises(ValueError, match="not an http"):
        normalize_url("ftp://box")


def test_resolve_target() -> None:
    saved = SavedLogin(url="http://box:5240", token="ebx_saved")
    assert resolve_target(None, None, None) == Target(DEFAULT_URL, None)
    assert resolve_target(None, None, saved) == Target("http://box:5240", "ebx_saved")
    assert resolve_target("http://box:5240/", "t", saved) == Target("http://box:5240", "t")
    assert resolve_target("http://x", "t", saved) == Target("http://x", "t")
    assert resolve_target("http://x", None, saved) == Target(
        "http://x", None, saved_login_url="http://box:5240"
    )
