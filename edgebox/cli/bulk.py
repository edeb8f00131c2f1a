"""What the bulk commands share (commission, test, deploy, release): machines by name or filter,
and a live view of them working until none is busy.

The view polls (`poll` returns a `Snapshot` each time) and shows the count per state: a table
redrawn in place on a terminal, or a line per change in a pipe; failures come with their
reasons (rows under the table, or one `failed: ...` line each on stderr as they appear).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import click
from rich.live import Live
from rich.table import Table

from edgebox.cli import render
from edgebox.cli.client import ApiClient, ApiError
from edgebox.cli.context import CliContext, CliUsageError, call_api, json_option, pass_cli
from edgebox.cli.machines import find_machine
from edgebox.domain.lifecycle import Action, Status, statuses_allowing

T = TypeVar("T")
SHOWN_FAILURES: Final = 10


@dataclass(frozen=True, slots=True)
class Snapshot:
    counts: Mapping[str, int]
    busy: frozenset[str]  # states still at work: shown first, in yellow
    failed: frozenset[str]  # shown in red
    done: bool
    failures: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (machine, reason)


def bulk_options(
    metavar: str, wait_help: str, extra: Sequence[Callable[[Any], Any]] = ()
) -> Callable[[Callable[..., None]], Any]:
    """The options every bulk command takes — machines by name or by tag/status/pool/zone,
    `extra` options, a comment, --wait and --timeout — applied as if stacked above it."""
    stack: tuple[Callable[[Any], Any], ...] = (
        click.argument("idents", nargs=-1, metavar=metavar),
        click.option("--tag", "tags", multiple=True, help="Machines with this tag (repeat: all)."),
        click.option(
            "--status",
            "statuses",
            multiple=True,
            metavar="STATUS",
            type=click.Choice([s.value for s in Status]),
            help="Machines in this status (repeat for any of several).",
        ),
        click.option("--pool", help="Machines in this pool."),
        click.option("--zone", help="Machines in this zone."),
        click.option(
            "--all",
            "all_machines",
            is_flag=True,
            help="Every machine in a status where this action applies, Broken ones aside.",
        ),
        *extra,
        click.option("--comment", help="Why (kept in each machine's event log)."),
        click.option("--wait", is_flag=True, help=wait_help),
        click.option(
            "--timeout",
            type=click.FloatRange(1),
            metavar="SECONDS",
            help="With --wait: stop waiting after this long.",
        ),
        json_option,
        pass_cli,
    )

    def apply(command: Callable[..., None]) -> Any:
        decorated: Any = command
        for decorator in reversed(stack):
            decorated = decorator(decorated)
        return decorated

    return apply


async def resolve_system_ids(client: ApiClient, idents: Sequence[str]) -> list[str]:
    """Machines named by system_id or hostname; an unknown one stays as given (the server
    refuses it by name)."""
    limit = asyncio.Semaphore(16)

    async def one(ident: str) -> str:
        async with limit:
            try:
                return str((await find_machine(client, ident))["system_id"])
            except ApiError as exc:
                if exc.status != 404:
                    raise
                return ident

    return list(await asyncio.gather(*(one(i) for i in idents)))


def selection(
    idents: Sequence[str], options: Mapping[str, Any], action: Action
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The bulk request's filter, and the same as /machines query parameters (to follow).

    `--all` is said, never assumed (the server refuses an empty filter so that a forgotten
    one never means every machine): it stands for the statuses where `action` is legal, but
    Broken (a person set those aside; name them), unless --status names some."""
    tags: Sequence[str] = options["tags"]
    statuses: Sequence[str] = options["statuses"]
    pool: str | None = options["pool"]
    zone: str | None = options["zone"]
    if options.get("all_machines") and not statuses:
        statuses = [s.value for s in statuses_allowing(action) if s is not Status.BROKEN]
    flt: dict[str, Any] = {}
    query: list[tuple[str, str]] = [("tag", t) for t in tags]
    if tags:
        flt["tag"] = list(tags)
    if statuses:
        flt["status"] = list(statuses)
    for name, value in (("pool", pool), ("zone", zone)):
        if value is not None:
            flt[name] = value
            query.append((name, value))
    if not idents and not flt:
        raise CliUsageError(
            "name machines (IDs), give a filter (--tag, --status, --pool, --zone) or say --all"
        )
    return flt, query


def label(item: Mapping[str, Any]) -> str:
    hostname = item.get("hostname")
    return f"{item.get('system_id')} ({hostname})" if hostname else str(item.get("system_id"))


def follow_progress(
    cli: CliContext,
    poll: Callable[[ApiClient], Awaitable[tuple[T, Snapshot]]],
    timeout: float | None,
    poll_s: float,
) -> T:
    """Poll until the snapshot says done (or `timeout`); show it live meanwhile."""
    started = time.monotonic()

    async def run(client: ApiClient) -> T:
        live = Live(console=render.make_console(), auto_refresh=False, transient=False)
        tty = sys.stdout.isatty() and not cli.json_output
        last, told = "", set[str]()
        with live if tty else contextlib.nullcontext():
            while True:
                result, snap = await poll(client)
                elapsed = time.monotonic() - started
                if tty:
                    live.update(progress_table(snap, elapsed), refresh=True)
                elif not cli.json_output:
                    line = ", ".join(f"{n} {s}" for s, n in sorted(snap.counts.items()))
                    if line != last:
                        click.echo(f"[{elapsed:5.0f}s] {line}")
                        last = line
                    for who, why in snap.failures:
                        if who not in told:
                            told.add(who)
                            click.echo(f"failed: {who}: {why}", err=True)
                if snap.done:
                    return result
                if timeout is not None and elapsed >= timeout:
                    click.echo(f"gave up waiting after {timeout:.0f}s", err=True)
                    return result
                await asyncio.sleep(poll_s)

    return call_api(cli, run)


def progress_table(snap: Snapshot, elapsed: float) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    table.add_column("STATE")
    table.add_column("MACHINES", justify="right")
    for state, count in sorted(
        snap.counts.items(), key=lambda item: (item[0] not in snap.busy, item[0])
    ):
        style = "red" if state in snap.failed else ("yellow" if state in snap.busy else "green")
        table.add_row(state, str(count), style=style)
    for who, why in snap.failures[:SHOWN_FAILURES]:
        table.add_row(f"  {who}", why, style="red")
    if len(snap.failures) > SHOWN_FAILURES:
        table.add_row(f"  … {len(snap.failures) - SHOWN_FAILURES} more failed", "", style="red")
    table.caption = f"{elapsed:.0f}s elapsed; {sum(snap.counts.values())} machine(s)"
    return table
