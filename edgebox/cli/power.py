"""`edgebox power ...`: set and test a machine's BMC, and power machines on, off or cycle them —
one, a list, or every machine a filter selects, with a live count until the operations end.

Operations are queued by the server; `--no-wait` returns as soon as they are queued. Waiting,
the command polls the operations and exits non-zero if any failed (or was refused), so a
pipeline can rely on its status.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import click

from edgebox.cli import render
from edgebox.cli.client import ApiClient, ApiError, JsonObject, path_segment
from edgebox.cli.context import CliContext, CliError, CliUsageError, call_api, json_option, pass_cli
from edgebox.cli.machines import find_machine, machine_label

FINISHED = ("done", "failed")
POLL_SECONDS = 0.5


@click.group("power")
def power() -> None:
    """Power control: BMC settings, and on/off/cycle for one machine or many."""


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--option")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif raw.lstrip("-").isdigit():
            value = int(raw)
        options[key] = value
    return options


@power.command("set")
@click.argument("ident", metavar="MACHINE")
@click.option("--driver", required=True, help="ipmi, redfish, webhook, manual or lab.")
@click.option("--address", default="", help="The BMC's address (host, host:port or URL).")
@click.option("--user", "username", default="", help="The BMC user.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (keeps it out of the shell history).",
)
@click.option("--password", help="The BMC password (prefer --password-stdin).")
@click.option(
    "--option", "options", multiple=True, metavar="NAME=VALUE", help="A driver option; repeat."
)
@json_option
@pass_cli
def set_bmc(
    cli: CliContext,
    /,
    *,
    ident: str,
    driver: str,
    address: str,
    username: str,
    password_stdin: bool,
    password: str | None,
    options: Sequence[str],
) -> None:
    """Set a machine's BMC. Without a password the stored one is kept."""
    if password_stdin:
        if password is not None:
            raise CliUsageError("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\n")
    body: dict[str, Any] = {"driver": driver, "address": address, "username": username}
    body["options"] = _parse_options(options)
    if password is not None:
        body["password"] = password

    async def work(client: ApiClient) -> tuple[JsonObject, JsonObject]:
        machine = await find_machine(client, ident)
        path = f"/machines/{path_segment(machine['system_id'])}/bmc"
        return machine, await client.request("PUT", path, body=body)

    machine, bmc = call_api(cli, work)
    if cli.json_output:
        render.print_json(bmc)
        return
    click.echo(f"{machine_label(machine)}: BMC set ({_bmc_line(bmc)}).")


@power.command("show")
@click.argument("ident", metavar="MACHINE")
@json_option
@pass_cli
def show(cli: CliContext, ident: str) -> None:
    """A machine's BMC settings, power state and recent power operations."""

    async def work(client: ApiClient) -> tuple[JsonObject, JsonObject | None, JsonObject]:
        machine = await find_machine(client, ident)
        base = f"/machines/{path_segment(machine['system_id'])}"
        try:
            bmc = await client.get(f"{base}/bmc")
        except ApiError as exc:  # a 404 here means "no BMC", shown as such
            if exc.status != 404:
                raise
            bmc = None
        return machine, bmc, await client.get(f"{base}/power")

    machine, bmc, state = call_api(cli, work)
    if cli.json_output:
        render.print_json({"bmc": bmc, **state})
        return
    render.print_fields(
        [
            ("machine", machine_label(machine)),
            ("bmc", _bmc_line(bmc) if bmc else "none (set one with 'edgebox power set')"),
            ("power", render.text(state["power_state"])),
        ]
    )
    if state["ops"]:
        render.print_table(("OP", "ID", "STATE", "TRIES", "WHEN", "ERROR"), _op_rows(state["ops"]))


@power.command("test")
@click.argument("ident", metavar="MACHINE")
@json_option
@pass_cli
def test(cli: CliContext, ident: str) -> None:
    """Ask the BMC for the power state now: does it answer, are the credentials right?"""

    async def work(client: ApiClient) -> tuple[JsonObject, JsonObject]:
        machine = await find_machine(client, ident)
        path = f"/machines/{path_segment(machine['system_id'])}/bmc/test"
        return machine, await client.post(path, {})

    machine, result = call_api(cli, work)
    if cli.json_output:
        render.print_json(result)
    elif result["ok"]:
        click.echo(f"{machine_label(machine)}: BMC answers; power is {result['power_state']}.")
    if not result["ok"]:
        kind = "fatal: fix the settings" if result["fatal"] else "retryable"
        raise CliError(f"{machine_label(machine)}: BMC test failed ({kind}): {result['error']}")


@power.command("confirm")
@click.argument("ident", metavar="MACHINE")
@pass_cli
def confirm(cli: CliContext, ident: str) -> None:
    """Say you did what a waiting (manual) power operation asked for."""

    async def work(client: ApiClient) -> tuple[JsonObject, JsonObject]:
        machine = await find_machine(client, ident)
        path = f"/machines/{path_segment(machine['system_id'])}/power/confirm"
        return machine, await client.post(path, {})

    machine, result = call_api(cli, work)
    ops = ", ".join(op["op"] for op in result["ops"])
    click.echo(f"{machine_label(machine)}: confirmed {ops}.")


@power.command("delete")
@click.argument("ident", metavar="MACHINE")
@pass_cli
def delete_bmc(cli: CliContext, ident: str) -> None:
    """Remove a machine's BMC settings."""

    async def work(client: ApiClient) -> JsonObject:
        machine = await find_machine(client, ident)
        await client.delete(f"/machines/{path_segment(machine['system_id'])}/bmc")
        return machine

    click.echo(f"{machine_label(call_api(cli, work))}: BMC removed.")


def _operation_command(name: str, help_text: str) -> click.Command:
    @click.argument("idents", metavar="[MACHINE]...", nargs=-1)
    @click.option("--tag", "tags", multiple=True, help="Every machine with this tag; repeat.")
    @click.option("--status", "statuses", multiple=True, help="Every machine in this status.")
    @click.option("--pool", help="Every machine in this pool.")
    @click.option("--zone", help="Every machine in this zone.")
    @click.option("--wait/--no-wait", default=True, show_default=True, help="Follow to the end.")
    @json_option
    @pass_cli
    def command(
        cli: CliContext,
        /,
        *,
        idents: Sequence[str],
        tags: Sequence[str],
        statuses: Sequence[str],
        pool: str | None,
        zone: str | None,
        wait: bool,
        **flags: bool,
    ) -> None:
        op = _op_name(name, flags)
        flt: dict[str, Any] = {}
        if tags:
            flt["tag"] = list(tags)
        if statuses:
            flt["status"] = list(statuses)
        if pool:
            flt["pool"] = pool
        if zone:
            flt["zone"] = zone
        if not idents and not flt:
            raise CliUsageError("name machines, or select them with --tag/--status/--pool/--zone")
        items, ops = call_api(
            cli, lambda client: _run(client, op, idents=idents, flt=flt, wait=wait, cli=cli)
        )
        _report(cli, items, ops)

    command.__doc__ = help_text
    if name == "on":
        command = click.option("--network", is_flag=True, help="Boot from the network once.")(
            command
        )
    if name == "off":
        command = click.option("--soft", is_flag=True, help="Ask the OS to shut down.")(command)
    return click.command(name)(command)


def _op_name(name: str, flags: Mapping[str, bool]) -> str:
    if name == "on" and flags.get("network"):
        return "on-network"
    if name == "off" and flags.get("soft"):
        return "soft-off"
    return name


async def _run(
    client: ApiClient,
    op: str,
    *,
    idents: Sequence[str],
    flt: Mapping[str, Any],
    wait: bool,
    cli: CliContext,
) -> tuple[list[JsonObject], dict[int, JsonObject]]:
    system_ids = [str((await find_machine(client, i))["system_id"]) for i in idents]
    body: dict[str, Any] = {"op": op, "machines": system_ids}
    if flt:
        body["filter"] = dict(flt)
    items: list[JsonObject] = (await client.post("/power", body))["items"]
    ops = {int(i["op"]["id"]): i["op"] for i in items if i["op"]}
    if not wait or not ops:
        return items, ops
    progress = _Progress(len(ops), show=not cli.json_output and sys.stderr.isatty())
    while True:
        for chunk in _chunks(sorted(ops), 300):  # the server takes 300 ids a request
            answer = await client.get("/power/ops", [("id", ",".join(map(str, chunk)))])
            ops.update({int(o["id"]): o for o in answer["items"]})
        counts = Counter(o["state"] for o in ops.values())
        progress.show(counts)
        if all(o["state"] in (*FINISHED, "waiting") for o in ops.values()):
            progress.end()
            return items, ops
        await asyncio.sleep(POLL_SECONDS)


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


class _Progress:
    """One line on stderr, rewritten: how many operations are in each state."""

    def __init__(self, total: int, show: bool) -> None:
        self.total = total
        self.enabled = show
        self.started = time.monotonic()

    def show(self, counts: Counter[str]) -> None:
        if not self.enabled:
            return
        parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        elapsed = time.monotonic() - self.started
        click.echo(f"\r{self.total} operations: {parts} ({elapsed:.0f}s)\x1b[K", nl=False, err=True)

    def end(self) -> None:
        if self.enabled:
            click.echo(err=True)


def _report(cli: CliContext, items: list[JsonObject], ops: dict[int, JsonObject]) -> None:
    for item in items:
        if item["op"]:
            item["op"] = ops.get(int(item["op"]["id"]), item["op"])
    if cli.json_output:
        render.print_json(items)
    else:
        rows = []
        for item in items:
            op = item["op"]
            state = op["state"] if op else "refused"
            why = item["refused"] or (op["error"] if op else "")
            rows.append([item["system_id"], render.text(item["hostname"]), state, render.text(why)])
        render.print_table(("SYSTEM_ID", "HOSTNAME", "STATE", "DETAIL"), rows)
    bad = [i for i in items if i["refused"] or (i["op"] and i["op"]["state"] == "failed")]
    if bad:
        raise CliError(f"{len(bad)} of {len(items)} machines failed or were refused")


def _bmc_line(bmc: Mapping[str, Any]) -> str:
    parts = [f"driver {bmc['driver']}"]
    if bmc.get("address"):
        parts.append(f"address {bmc['address']}")
    if bmc.get("username"):
        parts.append(f"user {bmc['username']}")
    parts.append("password set" if bmc.get("has_password") else "no password")
    for key, value in sorted(bmc.items()):
        if key.startswith("has_") and key not in ("has_password", "has_headers") and value:
            parts.append(f"{key.removeprefix('has_')} set")
    if bmc.get("header_names"):
        parts.append("headers " + ", ".join(bmc["header_names"]) + " (values hidden)")
    options = bmc.get("options") or {}
    if options:
        parts.append(", ".join(f"{k}={v}" for k, v in sorted(options.items())))
    if bmc.get("secrets_dropped"):
        parts.append(
            f"stored {', '.join(bmc['secrets_dropped'])} dropped: the BMC now points elsewhere,"
            " give them again"
        )
    return "; ".join(parts)


def _op_rows(ops: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            op["op"],
            str(op["id"]),
            op["state"],
            str(op["attempts"]),
            render.timestamp(op["updated_at"]),
            render.text(op["error"]),
        ]
        for op in ops
    ]


for _name, _help in (
    ("on", "Power machines on (--network: boot from the network once)."),
    ("off", "Power machines off (--soft: ask the OS to shut down)."),
    ("cycle", "Power cycle machines."),
    ("query", "Ask the BMCs for the power state now."),
):
    power.add_command(_operation_command(_name, _help))


@power.command("status")
@click.argument("idents", metavar="[MACHINE]...", nargs=-1)
@json_option
@pass_cli
def status(cli: CliContext, idents: Sequence[str]) -> None:
    """The recorded power state of machines (all with no arguments)."""

    async def work(client: ApiClient) -> list[JsonObject]:
        if idents:
            return [await find_machine(client, i) for i in idents]
        page = await client.get("/machines", [("limit", "1000")])
        items: list[JsonObject] = page["items"]
        return items

    machines = call_api(cli, work)
    if cli.json_output:
        render.print_json(
            [{"system_id": m["system_id"], "power_state": m["power_state"]} for m in machines]
        )
        return
    render.print_table(
        ("SYSTEM_ID", "HOSTNAME", "POWER"),
        ([m["system_id"], m["hostname"], m["power_state"]] for m in machines),
    )
