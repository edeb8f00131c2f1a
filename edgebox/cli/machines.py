"""`edgebox machines ...`: list, show, add, update and delete machines.

A machine is named on the command line by its system_id or its hostname. `find_machine` asks
for the system_id first and falls back to a hostname search only when that is a 404, so the
common case costs one request and a hostname that looks like a system_id still works.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from edgebox.cli import render
from edgebox.cli.client import ApiClient, ApiError, JsonObject, path_segment
from edgebox.cli.context import CliContext, CliUsageError, call_api, json_option, pass_cli
from edgebox.cli.hardware_view import (
    HARDWARE_COLUMNS,
    hardware_columns,
    hardware_fields,
    inventory_fields,
)
from edgebox.domain.lifecycle import Status

MACHINE_COLUMNS = (
    "SYSTEM_ID", "HOSTNAME", "STATUS", "POWER", *HARDWARE_COLUMNS, "POOL", "ZONE", "TAGS", "MAC",
)  # fmt: skip


async def find_machine(client: ApiClient, ident: str) -> JsonObject:
    """The machine whose system_id or (failing that) hostname is `ident`."""
    try:
        machine: JsonObject = await client.get(f"/machines/{path_segment(ident)}")
    except ApiError as exc:
        if exc.status != 404:
            raise
    else:
        return machine
    page = await client.get("/machines", [("hostname", ident)])
    for candidate in page.get("items", []):
        if candidate.get("hostname") == ident:
            found: JsonObject = candidate
            return found
    raise ApiError(404, "not_found", f"no machine has the system_id or hostname {ident!r}")


def machine_label(machine: Mapping[str, Any]) -> str:
    """`abc123 (node-abc123)`, the way a machine is named in messages."""
    system_id = str(machine.get("system_id", "?"))
    hostname = machine.get("hostname")
    return f"{system_id} ({hostname})" if hostname else system_id


def primary_mac(machine: Mapping[str, Any]) -> str:
    """The boot interface's MAC, or the first interface's when none is marked for boot."""
    interfaces = machine.get("interfaces") or []
    for interface in interfaces:
        if interface.get("boot"):
            return render.text(interface.get("mac"))
    return render.text(interfaces[0].get("mac")) if interfaces else render.NONE


def machine_row(machine: Mapping[str, Any]) -> list[str]:
    status = render.field(machine, "status")
    if machine.get("locked"):
        status += " (locked)"
    return [
        render.field(machine, "system_id"),
        render.field(machine, "hostname"),
        status,
        render.field(machine, "power_state"),
        *hardware_columns(machine),
        render.field(machine, "pool"),
        render.field(machine, "zone"),
        render.field(machine, "tags"),
        primary_mac(machine),
    ]


def machine_fields(machine: Mapping[str, Any]) -> list[tuple[str, str]]:
    status = render.field(machine, "status")
    if machine.get("previous_status"):
        status += f" (previously {machine['previous_status']})"
    fields = [
        ("system_id", render.field(machine, "system_id")),
        ("hostname", render.field(machine, "hostname")),
        ("status", status),
        ("locked", render.field(machine, "locked")),
        ("power", render.field(machine, "power_state")),
        ("arch", render.field(machine, "arch")),
        ("pool", render.field(machine, "pool")),
        ("zone", render.field(machine, "zone")),
        ("owner", render.field(machine, "owner")),
        ("tags", render.field(machine, "tags")),
    ]
    interfaces = machine.get("interfaces") or []
    for index, interface in enumerate(interfaces):
        words = [render.field(interface, "mac"), interface.get("name") or ""]
        if interface.get("boot"):
            words.append("(boot)")
        fields.append(("interfaces" if index == 0 else "", " ".join(w for w in words if w)))
    if not interfaces:
        fields.append(("interfaces", render.NONE))
    fields += [
        ("created", render.timestamp(machine.get("created_at"))),
        ("updated", render.timestamp(machine.get("updated_at"))),
        ("status changed", render.timestamp(machine.get("status_changed_at"))),
    ]
    return fields


def show_machine(cli: CliContext, machine: JsonObject, inventory: JsonObject | None = None) -> None:
    """The machine's fields, then (when given) its hardware summary."""
    if cli.json_output:
        render.print_json(machine)
        return
    fields = machine_fields(machine)
    if inventory is not None:
        fields += hardware_fields(inventory)
    elif "hardware" in machine:
        fields.append(("hardware", "not reported yet (the machine has not enlisted)"))
    render.print_fields(fields)


async def inventory_of(client: ApiClient, machine: JsonObject) -> JsonObject | None:
    """The machine's inventory, or None when its agent has reported none yet."""
    try:
        inventory: JsonObject = await client.get(
            f"/machines/{path_segment(machine['system_id'])}/inventory"
        )
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return inventory


def print_done(cli: CliContext, machine: JsonObject, message: str) -> None:
    """After a change: the machine as JSON, or one line that says what happened."""
    if cli.json_output:
        render.print_json(machine)
    else:
        click.echo(message)


@click.group()
def machines() -> None:
    """List, inspect and change machines."""


@machines.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in Status]),
    metavar="STATUS",
    help="Only machines in this status, e.g. new, ready, deployed (repeat for any of several).",
)
@click.option("--pool", help="Only machines in this pool.")
@click.option("--zone", help="Only machines in this zone.")
@click.option("--tag", "tags", multiple=True, help="Only machines with this tag (repeat: all).")
@click.option("--not-tag", "not_tags", multiple=True, help="Leave out machines with this tag.")
@click.option("--hostname", help="Only the machine with this hostname.")
@click.option("--mac", help="Only the machine with this MAC address.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), metavar="N", help="Machines per page (server: 100)."
)
@click.option("--all", "fetch_all", is_flag=True, help="Follow the pages to the last machine.")
@json_option
@pass_cli
def list_machines(
    cli: CliContext,
    *,
    statuses: Sequence[str],
    pool: str | None,
    zone: str | None,
    tags: Sequence[str],
    not_tags: Sequence[str],
    hostname: str | None,
    mac: str | None,
    limit: int | None,
    fetch_all: bool,
) -> None:
    """List machines, one page unless --all."""
    query = [("status", status) for status in statuses]
    query += [("tag", tag) for tag in tags] + [("not_tag", tag) for tag in not_tags]
    for name, value in (("pool", pool), ("zone", zone), ("hostname", hostname), ("mac", mac)):
        if value is not None:
            query.append((name, value))
    if limit is not None:
        query.append(("limit", str(limit)))

    async def fetch(client: ApiClient) -> tuple[list[JsonObject], Any, str | None]:
        page = await client.get("/machines", query)
        items: list[JsonObject] = list(page.get("items", []))
        cursor = page.get("next")
        while fetch_all and cursor and page.get("items"):
            page = await client.get("/machines", [*query, ("after", cursor)])
            items += page.get("items", [])
            cursor = page.get("next")
        return items, page.get("total"), cursor

    items, total, cursor = call_api(cli, fetch)
    if cli.json_output:
        render.print_json(items)
        return
    if not items:
        click.echo("No machines match.", err=True)
        return
    render.print_table(MACHINE_COLUMNS, (machine_row(machine) for machine in items))
    if cursor and not fetch_all:
        of_total = f" of {total}" if isinstance(total, int) else ""
        click.echo(f"Showing {len(items)}{of_total} machines; --all lists them all.", err=True)


@machines.command("show")
@click.argument("ident", metavar="ID")
@json_option
@pass_cli
def show(cli: CliContext, ident: str) -> None:
    """Show one machine, named by system_id or hostname, with a summary of its hardware."""

    async def fetch(client: ApiClient) -> tuple[JsonObject, JsonObject | None]:
        machine = await find_machine(client, ident)
        return machine, None if cli.json_output else await inventory_of(client, machine)

    machine, inventory = call_api(cli, fetch)
    show_machine(cli, machine, inventory)


@machines.command("inventory")
@click.argument("ident", metavar="ID")
@json_option
@pass_cli
def inventory(cli: CliContext, ident: str) -> None:
    """Print the whole hardware inventory the machine's agent reported."""

    async def fetch(client: ApiClient) -> JsonObject:
        machine = await find_machine(client, ident)
        found = await inventory_of(client, machine)
        if found is None:
            raise ApiError(
                404,
                "not_found",
                f"{machine_label(machine)} has reported no inventory yet: it appears once the "
                "machine enlists (network-boots) or is commissioned",
            )
        return found

    found = call_api(cli, fetch)
    if cli.json_output:
        render.print_json(found)
    else:
        render.print_fields(inventory_fields(found))


@machines.command("add")
@click.argument("mac")
@click.option("--mac", "extra_macs", multiple=True, metavar="MAC", help="Another interface.")
@click.option("--hostname", help="Hostname (the server picks one if not given).")
@click.option("--arch", help="Architecture, e.g. amd64/generic.")
@click.option("--pool", help="Resource pool.")
@click.option("--zone", help="Availability zone.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for several).")
@json_option
@pass_cli
def add(
    cli: CliContext,
    *,
    mac: str,
    extra_macs: Sequence[str],
    hostname: str | None,
    arch: str | None,
    pool: str | None,
    zone: str | None,
    tags: Sequence[str],
) -> None:
    """Add a machine by the MAC address of its boot interface."""
    body: dict[str, Any] = {"mac": mac}
    if extra_macs:
        body["macs"] = list(extra_macs)
    for name, value in (("hostname", hostname), ("arch", arch), ("pool", pool), ("zone", zone)):
        if value is not None:
            body[name] = value
    if tags:
        body["tags"] = list(tags)
    machine = call_api(cli, lambda client: client.post("/machines", body))
    print_done(cli, machine, f"Added machine {machine_label(machine)}.")


def parse_tag_list(value: str) -> list[str]:
    """`--tags a,b` → ["a", "b"]; `--tags ""` clears the tags."""
    return [tag.strip() for tag in value.split(",") if tag.strip()]


@machines.command("update")
@click.argument("ident", metavar="ID")
@click.option("--hostname", help="New hostname.")
@click.option("--pool", help="New resource pool.")
@click.option("--zone", help="New availability zone.")
@click.option("--tags", metavar="A,B", help='Replace all tags ("" removes them).')
@json_option
@pass_cli
def update(
    cli: CliContext,
    *,
    ident: str,
    hostname: str | None,
    pool: str | None,
    zone: str | None,
    tags: str | None,
) -> None:
    """Change a machine's hostname, pool, zone or tags."""
    body: dict[str, Any] = {
        name: value
        for name, value in (("hostname", hostname), ("pool", pool), ("zone", zone))
        if value is not None
    }
    if tags is not None:
        body["tags"] = parse_tag_list(tags)
    if not body:
        raise click.UsageError("nothing to change: give --hostname, --pool, --zone or --tags")

    async def patch(client: ApiClient) -> JsonObject:
        machine = await find_machine(client, ident)
        updated: JsonObject = await client.patch(
            f"/machines/{path_segment(machine['system_id'])}", body
        )
        return updated

    machine = call_api(cli, patch)
    print_done(cli, machine, f"Updated machine {machine_label(machine)}.")


def stdin_is_interactive() -> bool:
    return sys.stdin.isatty()


@machines.command("delete")
@click.argument("ident", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def delete(cli: CliContext, ident: str, yes: bool) -> None:
    """Delete a machine from the inventory."""
    machine = call_api(cli, lambda client: find_machine(client, ident))
    label = machine_label(machine)
    if not yes:
        if not stdin_is_interactive():
            raise CliUsageError(
                f"not deleting {label}: stdin is not a terminal, so pass --yes to confirm"
            )
        click.confirm(f"Delete machine {label}?", abort=True)
    path = f"/machines/{path_segment(machine['system_id'])}"
    call_api(cli, lambda client: client.delete(path))
    click.echo(f"Deleted machine {label}.")
