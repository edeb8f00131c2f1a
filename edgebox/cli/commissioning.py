"""`edgebox commission`, `edgebox test`, `edgebox results` and `edgebox commission-summary`.

`commission` and `test` take machines by id or hostname and/or a filter (--tag, --status,
--pool, --zone) and start them in one bulk request; each machine is accepted or refused with
the reason. With --wait the command then follows the machines until none is commissioning or
testing, showing how many are in each status (a live table on a terminal, a line per change
in a pipe), and exits 1 if any machine was refused or ended Failed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import click

from edgebox.cli import render
from edgebox.cli.bulk import (
    Snapshot,
    bulk_options,
    follow_progress,
    label,
    resolve_system_ids,
    selection,
)
from edgebox.cli.client import ApiClient, JsonObject, path_segment
from edgebox.cli.context import CliContext, call_api, json_option, pass_cli
from edgebox.cli.machines import find_machine
from edgebox.domain.lifecycle import Action

BUSY: Final = frozenset({"commissioning", "testing"})
FAILED: Final = frozenset({"failed_commissioning", "failed_testing"})
POLL_S: Final = 2.0
FETCH_EACH_UP_TO: Final = 20  # more accepted machines than this: list pages instead
RESULT_COLUMNS = ("ID", "SCRIPT", "DEVICE", "STATUS", "EXIT", "RUNTIME", "RESULTS")


def parse_tests(value: str | None) -> list[str] | None:
    """`--tests a,b` -> ["a", "b"]; `--tests ""` -> [] (no tests); absent -> the defaults."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_params(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--param memory-test.fraction=0.5` (repeatable) -> {"memory-test": {"fraction": 0.5}}.

    A value is read as JSON when it is a JSON number, boolean or string (`0.5`, `true`,
    `'"123"'`), else taken as text; edgebox checks it against the script's metadata.
    """
    params: dict[str, dict[str, Any]] = {}
    for item in values:
        key, equals, text = item.partition("=")
        script, dot, name = key.rpartition(".")
        if not equals or not dot or not script or not name:
            raise click.BadParameter(
                f"expected SCRIPT.PARAMETER=VALUE, e.g. memory-test.fraction=0.5; got {item!r}",
                param_hint="--param",
            )
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        if value is None or isinstance(value, dict | list):
            value = text
        params.setdefault(script, {})[name] = value
    return params


def run_body(action: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The request body's run options: the tests, the parameters and the comment."""
    body: dict[str, Any] = {"action": action}
    tests = parse_tests(options["tests"])
    if tests is not None:
        body["tests"] = tests
    if options["params"]:
        body["parameters"] = parse_params(options["params"])
    if options["comment"]:
        body["comment"] = options["comment"]
    return body


def _start(cli: CliContext, action: str, options: Mapping[str, Any]) -> None:
    idents: Sequence[str] = options["idents"]
    flt, query = selection(idents, options, Action(action))
    body = run_body(action, options)
    if flt:
        body["filter"] = flt

    async def start(client: ApiClient) -> JsonObject:
        if idents:
            body["machines"] = await resolve_system_ids(client, idents)
        answer: JsonObject = await client.post("/commissioning", body)
        return answer

    answer = call_api(cli, start)
    items = answer.get("items", [])
    accepted = [i for i in items if i.get("accepted")]
    refused = [i for i in items if not i.get("accepted")]
    if not cli.json_output:
        for item in refused:
            click.echo(f"refused: {label(item)}: {item.get('reason')}", err=True)
        verb = "commissioning" if action == "commission" else "testing"
        click.echo(f"Started {verb} of {len(accepted)} machine(s); {len(refused)} refused.")
    if not options["wait"] or not accepted:
        if cli.json_output:
            render.print_json(answer)
        if refused or not accepted:
            raise click.exceptions.Exit(1)
        return
    final = follow(cli, [str(i["system_id"]) for i in accepted], query, options["timeout"])
    failed = [m for m in final if m.get("status") in FAILED or m.get("status") in BUSY]
    if cli.json_output:
        render.print_json({**answer, "machines": final})
    else:
        for machine in failed:
            click.echo(f"{machine.get('status')}: {label(machine)}", err=True)
    if refused or failed:
        raise click.exceptions.Exit(1)


def follow(
    cli: CliContext, system_ids: list[str], query: list[tuple[str, str]], timeout: float | None
) -> list[JsonObject]:
    """Poll the machines until none is busy (or `timeout`); show the count per status."""
    wanted = set(system_ids)

    async def poll(client: ApiClient) -> tuple[list[JsonObject], Snapshot]:
        machines = await _fetch(client, system_ids, wanted, query)
        counts = Counter(str(m.get("status")) for m in machines)
        return machines, Snapshot(counts, BUSY, FAILED, done=not any(s in BUSY for s in counts))

    return follow_progress(cli, poll, timeout, POLL_S)


async def _fetch(
    client: ApiClient, system_ids: list[str], wanted: set[str], query: list[tuple[str, str]]
) -> list[JsonObject]:
    """The followed machines now: one by one when few, else by pages of the filter."""
    if len(system_ids) <= FETCH_EACH_UP_TO:
        paths = [f"/machines/{path_segment(s)}" for s in system_ids]
        return list(await asyncio.gather(*(client.get(p) for p in paths)))
    found: list[JsonObject] = []
    cursor: str | None = "0"
    while cursor is not None:
        page = await client.get("/machines", [*query, ("limit", "1000"), ("after", cursor)])
        found += [m for m in page.get("items", []) if m.get("system_id") in wanted]
        cursor = page.get("next")
    return found


_run_options = bulk_options(
    "[IDS]...",
    "Follow until done; exit 1 if any failed.",
    extra=[
        click.option("--tests", metavar="A,B", help='Testing scripts to run ("" none).'),
        click.option(
            "--param",
            "params",
            multiple=True,
            metavar="SCRIPT.NAME=VALUE",
            help="Set a script parameter for this run (repeatable), e.g. "
            "memory-test.fraction=0.5; the others keep their defaults.",
        ),
    ],
)


@click.command("commission")
@_run_options
def commission(cli: CliContext, **options: Any) -> None:
    """Commission machines: every commissioning script, then the tests (--tests, else the
    configured defaults). Machines by IDS (system id or hostname) and/or a filter."""
    _start(cli, "commission", options)


@click.command("test")
@_run_options
def test(cli: CliContext, **options: Any) -> None:
    """Test machines: the --tests given, else every built-in test that destroys nothing."""
    _start(cli, "test", options)


def result_row(result: Mapping[str, Any]) -> list[str]:
    device = result.get("device") or result.get("interface")
    if not device and result.get("per_device"):
        device = f"(each {'disk' if result['per_device'] == 'storage' else 'NIC'})"
    values = ", ".join(f"{k}={v}" for k, v in (result.get("results") or {}).items())
    runtime = result.get("runtime")
    return [
        render.field(result, "id"),
        render.field(result, "script"),
        render.text(device),
        render.field(result, "status"),
        render.field(result, "exit_code"),
        f"{runtime:.1f}s" if isinstance(runtime, int | float) else render.NONE,
        render.text(values or result.get("note")),
    ]


@click.command("results")
@click.argument("ident", metavar="MACHINE")
@click.option("--script", help="Only the results of this script.")
@click.option("--run", "run_id", type=click.IntRange(1), help="An earlier run (see --json).")
@click.option("--output", is_flag=True, help="Print each result's stdout and stderr too.")
@json_option
@pass_cli
def results(
    cli: CliContext, ident: str, script: str | None, run_id: int | None, output: bool
) -> None:
    """Show a machine's script results (its latest run unless --run)."""
    query = [("script", script)] if script else []
    if run_id:
        query.append(("run", str(run_id)))

    async def fetch(client: ApiClient) -> tuple[JsonObject, list[JsonObject]]:
        machine = await find_machine(client, ident)
        base = f"/machines/{path_segment(machine['system_id'])}/results"
        view: JsonObject = await client.get(base, query)
        details: list[JsonObject] = []
        if output:
            details = [await client.get(f"{base}/{r['id']}") for r in view.get("results", [])]
        return view, details

    view, details = call_api(cli, fetch)
    if cli.json_output:
        render.print_json({**view, "details": details} if output else view)
        return
    run = view.get("run")
    if run is None:
        click.echo(f"{ident} has no commissioning or test runs yet.", err=True)
        return
    click.echo(
        f"run {run['id']}: {run['kind']}, {run['state']}, by {run['requested_by']} at "
        f"{render.timestamp(run.get('created_at'))}"
    )
    render.print_table(RESULT_COLUMNS, (result_row(r) for r in view.get("results", [])))
    for detail in details:
        label = " ".join(str(x) for x in (detail.get("script"), detail.get("device")) if x)
        for stream in ("stdout", "stderr"):
            text = detail.get(stream) or ""
            if text:
                click.echo(f"\n--- {label} ({detail.get('id')}): {stream} ---")
                click.echo(text, nl=not text.endswith("\n"))


@click.command("commission-summary")
@json_option
@pass_cli
def commission_summary(cli: CliContext) -> None:
    """Fleet summary: machines per status, and failures by script in their latest runs."""
    summary = call_api(cli, lambda client: client.get("/commissioning/summary"))
    if cli.json_output:
        render.print_json(summary)
        return
    statuses = summary.get("statuses") or {}
    render.print_table(("STATUS", "MACHINES"), ([s, str(n)] for s, n in sorted(statuses.items())))
    click.echo(f"\nruns in flight: {summary.get('running', 0)}")
    failures = summary.get("failures") or []
    if not failures:
        click.echo("No failures in the machines' latest runs.")
        return
    click.echo("")
    render.print_table(
        ("SCRIPT", "MACHINES", "FAILED", "TIMEDOUT", "DEGRADED"),
        (
            [str(f["script"]), str(f["machines"]), str(f.get("failed", 0)),
             str(f.get("timedout", 0)), str(f.get("degraded", 0))]
            for f in failures
        ),
    )  # fmt: skip


COMMISSIONING_COMMANDS: tuple[click.Command, ...] = (commission, test, results, commission_summary)
