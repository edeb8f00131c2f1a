"""`edgebox machines action ID ACTION` and its shortcuts (`lock`, `tag`, `set-pool`, ...).

Every action is `POST /machines/{system_id}/actions/{action}` with a JSON body; the server's
lifecycle table decides whether it is legal, and a refusal (409) is shown as it comes. The
generic command passes any action through, so a new server action needs no new CLI.

`--param key=value` adds a string; `--param key:=JSON` adds a typed value (the HTTPie
convention), e.g. `--param add:='["gpu"]'`; a key given twice becomes a list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from edgebox.cli.client import ApiClient, JsonObject, path_segment
from edgebox.cli.context import CliContext, call_api, json_option, pass_cli
from edgebox.cli.machines import find_machine, machine_label, print_done


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn `key=value` / `key:=JSON` pairs into an action body."""
    body: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.rstrip(":"):
            raise click.BadParameter(
                f"{pair!r} is not key=value or key:=JSON", param_hint="--param"
            )
        value: Any = raw
        if key.endswith(":"):
            key = key[:-1]
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise click.BadParameter(f"{key}: not JSON: {raw!r}", param_hint="--param") from exc
        if key not in body:
            body[key] = value
        elif isinstance(body[key], list):
            body[key].append(value)
        else:
            body[key] = [body[key], value]
    return body


def run_action(cli: CliContext, ident: str, action: str, body: dict[str, Any]) -> None:
    async def act(client: ApiClient) -> JsonObject:
        machine = await find_machine(client, ident)
        path = f"/machines/{path_segment(machine['system_id'])}/actions/{path_segment(action)}"
        result: JsonObject = await client.post(path, body)
        return result

    machine = call_api(cli, act)
    state = str(machine.get("status", "?"))
    if machine.get("locked"):
        state += ", locked"
    print_done(cli, machine, f"{machine_label(machine)}: {action} done ({state}).")


@click.command("action")
@click.argument("ident", metavar="ID")
@click.argument("action_name", metavar="ACTION")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A body field; KEY:=JSON for a typed value. Repeat for more.",
)
@click.option("--comment", help="Why (kept in the machine's event log).")
@json_option
@pass_cli
def action(
    cli: CliContext, ident: str, action_name: str, params: Sequence[str], comment: str | None
) -> None:
    """Run any action on a machine.

    ACTION is e.g. lock, unlock, mark-broken, mark-fixed, tag, set-pool or set-zone; the server
    decides which are legal for the machine's status.
    """
    body = parse_params(params)
    if comment is not None:
        body["comment"] = comment
    run_action(cli, ident, action_name, body)


def _simple_action(name: str, summary: str, *, with_comment: bool = False) -> click.Command:
    """A shortcut for an action whose body is empty or an optional comment."""

    @json_option
    @pass_cli
    def command(cli: CliContext, ident: str, comment: str | None = None) -> None:
        run_action(cli, ident, name, {} if comment is None else {"comment": comment})

    command.__doc__ = summary
    if with_comment:
        command = click.option("--comment", help="Why (kept in the event log).")(command)
    command = click.argument("ident", metavar="ID")(command)
    return click.command(name)(command)


@click.command("tag")
@click.argument("ident", metavar="ID")
@click.option("--add", "add", multiple=True, metavar="TAG", help="A tag to add (repeat).")
@click.option("--remove", "remove", multiple=True, metavar="TAG", help="A tag to remove (repeat).")
@json_option
@pass_cli
def tag(cli: CliContext, ident: str, add: Sequence[str], remove: Sequence[str]) -> None:
    """Add and remove tags.

    Other tags stay as they are ('machines update --tags' replaces them all).
    """
    if not add and not remove:
        raise click.UsageError("give --add TAG or --remove TAG")
    run_action(cli, ident, "tag", {"add": list(add), "remove": list(remove)})


@click.command("set-pool")
@click.argument("ident", metavar="ID")
@click.argument("pool")
@json_option
@pass_cli
def set_pool(cli: CliContext, ident: str, pool: str) -> None:
    """Move a machine to another resource pool."""
    run_action(cli, ident, "set-pool", {"pool": pool})


@click.command("set-zone")
@click.argument("ident", metavar="ID")
@click.argument("zone")
@json_option
@pass_cli
def set_zone(cli: CliContext, ident: str, zone: str) -> None:
    """Move a machine to another availability zone."""
    run_action(cli, ident, "set-zone", {"zone": zone})


ACTION_COMMANDS: tuple[click.Command, ...] = (
    action,
    _simple_action("lock", "Lock a machine against changes."),
    _simple_action("unlock", "Unlock a machine."),
    _simple_action("mark-broken", "Mark a machine broken.", with_comment=True),
    _simple_action("mark-fixed", "Mark a broken machine fixed.", with_comment=True),
    tag,
    set_pool,
    set_zone,
)
