"""`edgebox machines ...` against the fake API: what is sent, what is printed, exit codes."""

from __future__ import annotations

import json

import click
import pytest
from fake_edgebox_api import TOKEN, FakeEdgebox, Invoke

from edgebox.cli import machines as machines_module
from edgebox.cli.actions import parse_params


def add_three(fake: FakeEdgebox) -> None:
    fake.add_machine(
        "abc123",
        tags=["gpu", "rack1"],
        power_state="on",
        interfaces=[
            {"mac": "52:54:00:00:00:01", "name": "eno1", "boot": False},
            {"mac": "52:54:00:00:00:02", "name": "eno2", "boot": True},
        ],
    )
    fake.add_machine("def456", status="ready", pool="hpc", locked=True)
    fake.add_machine("ghi789", hostname="[odd]", interfaces=[{"mac": "52:54:00:00:00:09"}])


def test_list_prints_a_table_with_one_row_per_machine(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == list(machines_module.MACHINE_COLUMNS)
    # No inventory yet: arch, cores, memory and storage are "-".
    assert lines[1].split() == [
        "abc123", "node-abc123", "new", "on", "-", "-", "-", "-", "default", "default",
        "gpu,rack1", "52:54:00:00:00:02",
    ]  # fmt: skip
    assert lines[2].split()[:4] == ["def456", "node-def456", "ready", "(locked)"]
    # A hostname is text, not rich markup; no interfaces shows as "-".
    assert lines[3].split()[:2] == ["ghi789", "[odd]"]
    assert lines[3].split()[-1] == "52:54:00:00:00:09"
    request = fake.last("GET", "/api/v1/machines")
    assert request.auth == f"Bearer {TOKEN}"
    assert request.query == []
    assert result.stderr == ""


def test_list_sends_every_filter_as_query_parameters(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli(
        "machines", "list", "--status", "new", "--status", "ready", "--pool", "hpc",
        "--zone", "z1", "--tag", "gpu", "--tag", "ib", "--not-tag", "broken-fan",
        "--hostname", "n1", "--mac", "52:54:00:00:00:01", "--limit", "5",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert fake.last("GET").query == [
        ("status", "new"),
        ("status", "ready"),
        ("tag", "gpu"),
        ("tag", "ib"),
        ("not_tag", "broken-fan"),
        ("pool", "hpc"),
        ("zone", "z1"),
        ("hostname", "n1"),
        ("mac", "52:54:00:00:00:01"),
        ("limit", "5"),
    ]
    assert result.stderr == "No machines match.\n"


def test_list_rejects_an_unknown_status_before_asking_the_server(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    result = run_cli("machines", "list", "--status", "sleeping")

    assert result.exit_code == 2
    assert "'sleeping' is not one of" in result.stderr
    assert fake.requests == []


def test_list_all_follows_the_next_cursor_to_the_end(fake: FakeEdgebox, run_cli: Invoke) -> None:
    for n in range(5):
        fake.add_machine(f"m{n}")

    result = run_cli("--json", "machines", "list", "--all", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert [m["system_id"] for m in json.loads(result.stdout)] == ["m0", "m1", "m2", "m3", "m4"]
    assert [r.query for r in fake.requests] == [
        [("limit", "2")],
        [("limit", "2"), ("after", "m1")],
        [("limit", "2"), ("after", "m3")],
    ]


def test_list_without_all_says_how_many_more_there_are(fake: FakeEdgebox, run_cli: Invoke) -> None:
    for n in range(3):
        fake.add_machine(f"m{n}")

    result = run_cli("machines", "list", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == "Showing 2 of 3 machines; --all lists them all.\n"


def test_json_after_the_subcommand_prints_the_items_as_an_array(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    add_three(fake)

    result = run_cli("machines", "list", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == sorted(fake.machines.values(), key=lambda m: m["system_id"])


def test_show_by_system_id(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "show", "abc123")

    assert result.exit_code == 0, result.output
    assert "system_id:       abc123" in result.stdout
    assert "tags:            gpu,rack1" in result.stdout
    assert "interfaces:      52:54:00:00:00:01 eno1\n" in result.stdout
    assert "                 52:54:00:00:00:02 eno2 (boot)\n" in result.stdout
    assert "created:         2026-11-26T05:38:53Z" in result.stdout
    # The machine by its id at once, then its inventory for the hardware summary.
    assert fake.paths() == ["/api/v1/machines/abc123", "/api/v1/machines/abc123/inventory"]


def test_show_falls_back_to_the_hostname_when_the_id_is_not_a_system_id(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    add_three(fake)

    result = run_cli("--json", "machines", "show", "node-def456")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == fake.machines["def456"]
    assert fake.paths() == ["/api/v1/machines/node-def456", "/api/v1/machines"]
    assert fake.requests[1].query == [("hostname", "node-def456")]


def test_show_of_an_unknown_machine_is_an_error(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("machines", "show", "nope")

    assert result.exit_code == 1
    assert result.stderr == "error: no machine has the system_id or hostname 'nope'\n"
    assert result.stdout == ""


def test_add_sends_the_macs_and_options(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli(
        "machines", "add", "52:54:00:00:00:01", "--mac", "52:54:00:00:00:02",
        "--hostname", "gpu01", "--arch", "amd64/generic", "--pool", "hpc", "--tag", "gpu",
        "--tag", "ib",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert fake.last("POST").body == {
        "mac": "52:54:00:00:00:01",
        "macs": ["52:54:00:00:00:02"],
        "hostname": "gpu01",
        "arch": "amd64/generic",
        "pool": "hpc",
        "tags": ["gpu", "ib"],
    }
    assert result.stdout == "Added machine m00001 (gpu01).\n"


def test_add_with_only_a_mac_sends_only_the_mac(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("machines", "add", "52:54:00:00:00:01", "--json")

    assert result.exit_code == 0, result.output
    assert fake.last("POST").body == {"mac": "52:54:00:00:00:01"}
    assert json.loads(result.stdout)["system_id"] == "m00001"


def test_a_validation_error_shows_the_message_and_field(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.overrides[("POST", "/api/v1/machines")] = (
        400,
        {"error": "invalid", "message": "not a MAC address: 'zz'", "field": "mac"},
    )

    result = run_cli("machines", "add", "zz")

    assert result.exit_code == 1
    assert result.stderr == "error: not a MAC address: 'zz' (field: mac)\n"


def test_update_patches_only_the_given_fields(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "update", "node-abc123", "--pool", "hpc", "--tags", "a, b,")

    assert result.exit_code == 0, result.output
    assert fake.last("PATCH").path == "/api/v1/machines/abc123"
    assert fake.last("PATCH").body == {"pool": "hpc", "tags": ["a", "b"]}
    assert result.stdout == "Updated machine abc123 (node-abc123).\n"


def test_update_with_empty_tags_clears_them(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "update", "abc123", "--tags", "")

    assert result.exit_code == 0, result.output
    assert fake.last("PATCH").body == {"tags": []}


def test_update_with_nothing_to_change_is_a_usage_error(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("machines", "update", "abc123")

    assert result.exit_code == 2
    assert "nothing to change" in result.stderr
    assert fake.requests == []


def test_delete_with_yes_deletes(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "delete", "node-abc123", "--yes")

    assert result.exit_code == 0, result.output
    assert fake.last("DELETE").path == "/api/v1/machines/abc123"
    assert "abc123" not in fake.machines
    assert result.stdout == "Deleted machine abc123 (node-abc123).\n"


def test_delete_without_yes_refuses_when_stdin_is_not_a_terminal(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    add_three(fake)

    result = run_cli("machines", "delete", "abc123")

    assert result.exit_code == 2
    assert "not deleting abc123 (node-abc123)" in result.stderr
    assert "--yes" in result.stderr
    assert "DELETE" not in [r.method for r in fake.requests]


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("n\n", False)])
def test_delete_asks_on_a_terminal(
    fake: FakeEdgebox,
    run_cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    deleted: bool,
) -> None:
    add_three(fake)
    monkeypatch.setattr(machines_module, "stdin_is_interactive", lambda: True)

    result = run_cli("machines", "delete", "abc123", input=answer)

    assert "Delete machine abc123 (node-abc123)? [y/N]" in result.output
    assert ("abc123" not in fake.machines) is deleted
    assert result.exit_code == (0 if deleted else 1)


def test_an_illegal_action_shows_the_servers_message(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "lock", "abc123")

    assert result.exit_code == 1
    assert result.stderr == "error: cannot lock a machine that is new: deploy it\n"
    assert fake.last("POST").path == "/api/v1/machines/abc123/actions/lock"
    assert fake.last("POST").body == {}


def test_generic_action_builds_the_body_from_params_and_comment(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    add_three(fake)

    result = run_cli(
        "machines", "action", "node-def456", "tag", "--param", "add=x", "--param", "add=y",
        "--param", 'remove:=["gpu"]', "--comment", "why not",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    request = fake.last("POST")
    assert request.path == "/api/v1/machines/def456/actions/tag"
    assert request.body == {"add": ["x", "y"], "remove": ["gpu"], "comment": "why not"}
    assert result.stdout == "def456 (node-def456): tag done (ready, locked).\n"


def test_shortcuts_send_their_action_bodies(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    commands = [
        (["tag", "abc123", "--add", "ib", "--remove", "gpu"], "tag",
         {"add": ["ib"], "remove": ["gpu"]}),
        (["set-pool", "abc123", "hpc"], "set-pool", {"pool": "hpc"}),
        (["set-zone", "abc123", "z2"], "set-zone", {"zone": "z2"}),
        (["mark-broken", "abc123", "--comment", "PSU"], "mark-broken", {"comment": "PSU"}),
        (["unlock", "abc123"], "unlock", {}),
    ]  # fmt: skip
    for args, action, body in commands:
        result = run_cli("machines", *args)
        assert result.exit_code == 0, result.output
        assert fake.last("POST").path == f"/api/v1/machines/abc123/actions/{action}"
        assert fake.last("POST").body == body
    assert fake.machines["abc123"]["tags"] == ["rack1", "ib"]
    assert fake.machines["abc123"]["status"] == "broken"


def test_action_json_prints_the_machine(fake: FakeEdgebox, run_cli: Invoke) -> None:
    add_three(fake)

    result = run_cli("machines", "set-pool", "abc123", "hpc", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pool"] == "hpc"


def test_parse_params() -> None:
    assert parse_params([]) == {}
    assert parse_params(["a=1", "b:=1", "c:=null", "a=2", "a=x=y"]) == {
        "a": ["1", "2", "x=y"],
        "b": 1,
        "c": None,
    }
    assert parse_params(["empty="]) == {"empty": ""}


@pytest.mark.parametrize("bad", ["novalue", "=x", ":=1", "k:=not-json"])
def test_parse_params_rejects_malformed_pairs(bad: str) -> None:
    with pytest.raises(click.BadParameter, match=r"key=value|not JSON"):
        parse_params([bad])


COMMISSIONED = {
    "system": {"vendor": "Dell Inc.", "product": "PowerEdge R650", "serial": "7XK2", "uuid": ""},
    "cpu": {"model": "Xeon Gold 6338", "arch": "x86_64", "sockets": 2, "cores": 64,
            "threads": 128},
    "memory": {"total_mib": 262144, "dimms": []},
    "disks": [
        {"name": "nvme0n1", "type": "nvme", "size_bytes": 3840755982336, "model": "PM1733",
         "serial": "S4YNNE0N"},
        {"name": "sda", "type": "ssd", "size_bytes": 480103981056, "model": "MTFDDAK480",
         "serial": "2105311"},
    ],
    "nics": [{"name": "eno1", "mac": "b4:96:91:00:00:01", "driver": "ice",
              "speed_mbps": 25000}],
    "gpus": [{"vendor": "nvidia", "name": "A100 80GB", "address": "0000:17:00.0"}],
    "firmware": {"type": "uefi", "vendor": "Dell Inc.", "version": "1.6.5"},
}  # fmt: skip


def test_list_shows_hardware_columns_once_known(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_machine(
        "abc123",
        arch="amd64/generic",
        hardware={"cores": 64, "threads": 128, "memory_mib": 262144,
                  "storage_bytes": 4320859963392, "disks": 2, "gpus": 1, "arch": "amd64"},
    )  # fmt: skip

    result = run_cli("machines", "list")

    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[4:8] == ["ARCH", "CORES", "MEMORY", "STORAGE"]
    assert row.split()[4:10] == ["amd64", "64", "256.0", "GiB", "3.9", "TiB"]
    assert "(2 disks)" in row


def test_show_adds_a_hardware_summary(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_machine("abc123")
    fake.inventories["abc123"] = COMMISSIONED

    result = run_cli("machines", "show", "abc123")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Dell Inc. PowerEdge R650 (serial 7XK2)" in out
    assert "Xeon Gold 6338 (2 sockets, 64 cores, 128 threads) amd64" in out
    assert "256.0 GiB" in out
    assert "nvme0n1 3.5 TiB nvme PM1733 serial S4YNNE0N" in out
    assert "sda 447.1 GiB ssd MTFDDAK480 serial 2105311" in out
    assert "eno1 b4:96:91:00:00:01 ice 25000 Mb/s" in out
    assert "nvidia A100 80GB" in out


def test_show_says_when_no_hardware_is_known(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_machine("abc123")

    result = run_cli("machines", "show", "abc123")

    assert result.exit_code == 0, result.output
    assert "not reported yet" in result.stdout


def test_inventory_prints_every_section_or_the_json(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_machine("abc123", hostname="n1")
    fake.inventories["abc123"] = COMMISSIONED

    table = run_cli("machines", "inventory", "n1")
    as_json = run_cli("machines", "inventory", "abc123", "--json")

    assert table.exit_code == 0, table.output
    assert "firmware" in table.stdout and "version=1.6.5" in table.stdout
    assert "Xeon Gold 6338" in table.stdout
    assert json.loads(as_json.stdout) == COMMISSIONED


def test_inventory_of_a_machine_that_never_enlisted(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_machine("abc123")

    result = run_cli("machines", "inventory", "abc123")

    assert result.exit_code != 0
    assert "has reported no inventory yet" in result.stderr
