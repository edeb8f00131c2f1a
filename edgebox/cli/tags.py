"""`edgebox tags ...`: list, show, create, update and delete tags.

A tag created with `--definition` is automatic: the server evaluates the expression over each
machine's hardware inventory and tags exactly the machines it holds for, again after every
commissioning. When the server refuses a definition, the error names a column; the CLI
repeats the definition under the message with a caret at that column.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import click

from edgebox.cli import render
from edgebox.cli.client import ApiClient, ApiError, JsonObject, path_segment
from edgebox.cli.context import CliContext, CliError, CliUsageError, call_api, json_option, pass_cli

TAG_COLUMNS = ("NAME", "MACHINES", "DEFINITION", "COMMENT")
SHOWN_MACHINES = 100
_COLUMN = re.compile(r"\bcolumn (\d+):")


def tag_row(tag: Mapping[str, Any]) -> list[str]:
    return [
        render.field(tag, "name"),
        render.field(tag, "machine_count"),
        render.field(tag, "definition"),
        render.field(tag, "comment"),
    ]


def tag_fields(tag: Mapping[str, Any], machines: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields = [
        ("name", render.field(tag, "name")),
        ("kind", "automatic" if tag.get("automatic") else "manual"),
        ("definition", render.field(tag, "definition")),
        ("comment", render.field(tag, "comment")),
        ("machines", render.field(tag, "machine_count")),
    ]
    items = machines.get("items") or []
    for index, machine in enumerate(items):
        label = f"{render.field(machine, 'system_id')} ({render.field(machine, 'hostname')})"
        fields.append(("carried by" if index == 0 else "", label))
    total = machines.get("total")
    if isinstance(total, int) and total > len(items):
        fields.append(("", f"... and {total - len(items)} more (edgebox machines list --tag)"))
    return fields


def print_tag(cli: CliContext, tag: JsonObject, message: str) -> None:
    if cli.json_output:
        render.print_json(tag)
    else:
        click.echo(message)


def call_with_definition(
    cli: CliContext, definition: str | None, work: Callable[[ApiClient], Awaitable[JsonObject]]
) -> JsonObject:
    """`call_api`, and if the server refuses the definition, point at the column."""
    try:
        return call_api(cli, work)
    except CliError as exc:
        cause = exc.__cause__
        if definition is None or not isinstance(cause, ApiError) or cause.field != "definition":
            raise
        column = _COLUMN.search(cause.message)
        if column is None:
            raise
        caret = " " * (int(column.group(1)) - 1) + "^"
        raise CliError(f"{exc.format_message()}\n  {definition}\n  {caret}") from cause


@click.group("tags")
def tags() -> None:
    """List and manage tags; a tag with a definition follows the hardware by itself."""


@tags.command("list")
@json_option
@pass_cli
def list_tags(cli: CliContext) -> None:
    """List tags with their definitions and how many machines carry each."""
    page = call_api(cli, lambda client: client.get("/tags"))
    items = page.get("items", [])
    if cli.json_output:
        render.print_json(items)
    elif not items:
        click.echo("No tags.", err=True)
    else:
        render.print_table(TAG_COLUMNS, (tag_row(item) for item in items))


@tags.command("show")
@click.argument("name")
@json_option
@pass_cli
def show(cli: CliContext, name: str) -> None:
    """Show a tag and the machines that carry it."""
    path = f"/tags/{path_segment(name)}"

    async def fetch(client: ApiClient) -> tuple[JsonObject, JsonObject]:
        tag = await client.get(path)
        machines = await client.get(f"{path}/machines", [("limit", str(SHOWN_MACHINES))])
        return tag, machines

    tag, machines = call_api(cli, fetch)
    if cli.json_output:
        render.print_json(tag)
    else:
        render.print_fields(tag_fields(tag, machines))


@tags.command("create")
@click.argument("name")
@click.option(
    "--definition",
    metavar="EXPR",
    help="An expression over the hardware, e.g. 'gpu.vendor == \"nvidia\" and memory_gib >= 256'.",
)
@click.option("--comment", help="What the tag is for.")
@json_option
@pass_cli
def create(cli: CliContext, name: str, definition: str | None, comment: str | None) -> None:
    """Create a tag; with --definition it is automatic."""
    body = {"name": name}
    if definition is not None:
        body["definition"] = definition
    if comment is not None:
        body["comment"] = comment
    tag = call_with_definition(cli, definition, lambda client: client.post("/tags", body))
    count = render.field(tag, "machine_count")
    kind = f"automatic, on {count} machines" if tag.get("automatic") else "manual"
    print_tag(cli, tag, f"Created tag {render.field(tag, 'name')} ({kind}).")


@tags.command("update")
@click.argument("name")
@click.option(
    "--definition",
    metavar="EXPR",
    help='A new definition, re-evaluated over every machine ("" makes the tag manual).',
)
@click.option("--comment", help="A new comment.")
@json_option
@pass_cli
def update(cli: CliContext, name: str, definition: str | None, comment: str | None) -> None:
    """Change a tag's definition or comment."""
    body = {k: v for k, v in (("definition", definition), ("comment", comment)) if v is not None}
    if not body:
        raise click.UsageError("nothing to change: give --definition or --comment")
    path = f"/tags/{path_segment(name)}"
    tag = call_with_definition(cli, definition, lambda client: client.patch(path, body))
    count = render.field(tag, "machine_count")
    print_tag(cli, tag, f"Updated tag {render.field(tag, 'name')} (on {count} machines).")


def stdin_is_interactive() -> bool:
    return sys.stdin.isatty()


@tags.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def delete(cli: CliContext, name: str, yes: bool) -> None:
    """Delete a tag; the machines that carry it lose it."""
    path = f"/tags/{path_segment(name)}"
    tag = call_api(cli, lambda client: client.get(path))
    count = render.field(tag, "machine_count")
    if not yes:
        if not stdin_is_interactive():
            raise CliUsageError(
                f"not deleting tag {name}: stdin is not a terminal, so pass --yes to confirm"
            )
        click.confirm(f"Delete tag {name} (carried by {count} machines)?", abort=True)
    call_api(cli, lambda client: client.delete(path))
    click.echo(f"Deleted tag {name} (carried by {count} machines).")
