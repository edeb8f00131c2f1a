"""`edgebox token ...` against the fake API, and the small rendering helpers."""

from __future__ import annotations

import json

import pytest
from fake_edgebox_api import FakeEdgebox, Invoke

from edgebox.cli import render

NOW_SHOWN = "2026-11-26T05:38:53Z"


def test_list_prints_a_table(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("token", "list")

    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["ID", "NAME", "USER", "ROLE", "PREFIX", "CREATED", "LAST", "USED", "REVOKED"],
        ["1", "admin", "admin", "admin", "ebx_AbCd", NOW_SHOWN, NOW_SHOWN, "-"],
    ]
    assert fake.paths() == ["/api/v1/tokens"]


def test_list_json(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("token", "list", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == fake.tokens


def test_create_prints_the_secret_alone_on_stdout_and_warns(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    result = run_cli("token", "create", "ci", "--user", "alice", "--role", "viewer")

    assert result.exit_code == 0, result.output
    assert fake.last("POST").body == {"name": "ci", "user": "alice", "role": "viewer"}
    assert result.stdout == "ebx_NeWtOkEnSeCrEt\n"
    assert result.stderr.splitlines() == [
        "Created token 2 (ci, user alice, role viewer).",
        "warning: this is the only time the token is shown; store it now.",
    ]


def test_create_sends_only_the_name_by_default(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("--json", "token", "create", "ci")

    assert result.exit_code == 0, result.output
    assert fake.last("POST").body == {"name": "ci"}
    assert json.loads(result.stdout)["token"] == "ebx_NeWtOkEnSeCrEt"
    assert "only time" in result.stderr


def test_create_refuses_an_unknown_role(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("token", "create", "ci", "--role", "root")

    assert result.exit_code == 2
    assert fake.requests == []


def test_revoke(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("token", "revoke", "1")

    assert result.exit_code == 0, result.output
    assert fake.last("DELETE").path == "/api/v1/tokens/1"
    assert result.stdout == "Revoked token 1 (admin).\n"


def test_revoke_an_unknown_token(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("token", "revoke", "99")

    assert result.exit_code == 1
    assert result.stderr == "error: no token 99\n"


def test_text_and_timestamp() -> None:
    assert render.text(None) == "-"
    assert render.text("") == "-"
    assert render.text([]) == "-"
    assert render.text(["a", "b"]) == "a,b"
    assert render.text(True) == "yes"
    assert render.text(0) == "0"
    assert render.timestamp("2026-11-26T05:38:53.123456Z") == "2026-11-26T05:38:53Z"
    assert render.timestamp("2026-11-26T07:38:53+02:00") == "2026-11-26T05:38:53Z"
    assert render.timestamp(None) == "-"
    assert render.timestamp("yesterday") == "yesterday"


def test_a_pipe_gets_plain_aligned_rows(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_table(["A", "LONGER"], [["xyz", "1"], ["[b]q[/b]", ""]])

    assert capsys.readouterr().out == "A         LONGER\nxyz       1\n[b]q[/b]\n"


def test_the_terminal_table_prints_server_text_as_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render._print_rich_table(["NAME", "TAGS"], [["[bold]n1", "a,b"]])

    out = capsys.readouterr().out
    assert "[bold]n1" in out
    assert out.splitlines()[0].split() == ["NAME", "TAGS"]
