"""`edgebox allocate`, `edgebox deploy`, `edgebox release` and `edgebox deployment`.

`allocate` asks for machines by constraints (all or nothing; a refusal says how many matched
and why the others did not). `deploy` and `release` take machines by id or hostname and/or a
filter (--tag, --status, --pool, --zone) in one bulk request; each machine is accepted or
refused with the reason. With --wait the command follows the rollout until it ends, showing
how many machines are in each state (writing, booting, succeeded, failed, ...) and every
failure with its reason, and exits 1 if any machine was refused or did not finish.
`deployment` shows a machine's latest deploy or release with the tail of its agent's log.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
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
from edgebox.cli.context import CliContext, CliUsageError, call_api, json_option, pass_cli
from edgebox.cli.machines import find_machine
from edgebox.domain.lifecycle import Action

POLL_S: Final = 2.0
BUSY: Final = frozenset({"queued", "writing", "booting", "power-off", "erasing"})
FAILED: Final = frozenset({"failed"})
UNFINISHED: Final = frozenset({"failed", "aborted", "skipped"}) | BUSY
_SIZE = re.compile(r"(\d+)\s*([mgt]i?b?)?", re.IGNORECASE)
_MIB = {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory(text: str) -> int:
    """`16G`, `512M`, `2T` or a plain number of MiB -> MiB."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: expected a size such as 16G or 512M (MiB if bare)")
    unit = (match.group(2) or "")[:1].lower()
    return int(match.group(1)) * _MIB[unit]


def read_keys(paths: Sequence[Path]) -> list[str]:
    """Public keys from files (one per line, as in authorized_keys; # comments skipped)."""
    keys: list[str] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliUsageError(f"cannot read the SSH key file {path}: {exc.strerror}") from exc
        keys += [line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    return keys


def _read_user_data(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliUsageError(f"cannot read the user-data file {path}: {exc}") from exc


def _state(item: Mapping[str, Any]) -> str:
    """What a machine of a rollout is doing: its step while running, else its state."""
    state = str(item.get("state"))
    return str(item.get("step") or state) if state == "running" else state


def follow_rollout(cli: CliContext, rollout_id: int, timeout: float | None) -> JsonObject:
    """Follow the rollout until it ends; every failure is shown with its reason."""

    async def poll(client: ApiClient) -> tuple[JsonObject, Snapshot]:
        view: JsonObject = await client.get(f"/rollouts/{rollout_id}")
        items = view.get("items", [])
        counts = Counter(_state(i) for i in items)
        failures = [
            (label(i), f"{i.get('failed_step') or '?'}: {i.get('error')}")
            for i in items
            if i.get("state") == "failed"
        ]
        done = view.get("state") != "running" and not any(s in BUSY for s in counts)
        return view, Snapshot(counts, BUSY, FAILED, done, failures)

    return follow_progress(cli, poll, timeout, POLL_S)


def _bulk(
    cli: CliContext,
    action: Action,
    body: dict[str, Any],
    options: Mapping[str, Any],
    verb: str,
) -> None:
    path = f"/{action.value}"
    idents: Sequence[str] = options["idents"]
    flt, _ = selection(idents, options, action)
    if flt:
        body["filter"] = flt
    if options["comment"]:
        body["comment"] = options["comment"]

    async def send(client: ApiClient) -> JsonObject:
        if idents:
            body["machines"] = await resolve_system_ids(client, idents)
        answer: JsonObject = await client.post(path, body)
        return answer

    answer = call_api(cli, send)
    items = answer.get("items", [])
    refused = [i for i in items if not i.get("accepted")]
    accepted = len(items) - len(refused)
    if not cli.json_output:
        for item in refused:
            click.echo(f"refused: {label(item)}: {item.get('reason')}", err=True)
        click.echo(f"{verb} {accepted} machine(s); {len(refused)} refused.")
    if not options["wait"] or not accepted:
        if cli.json_output:
            render.print_json(answer)
        if refused or not accepted:
            raise click.exceptions.Exit(1)
        return
    view = follow_rollout(cli, int(answer["rollout"]), options["timeout"])
    if _report(cli, answer, view) or refused:
        raise click.exceptions.Exit(1)


def _report(cli: CliContext, answer: JsonObject, view: JsonObject) -> bool:
    """Say how the rollout ended; True if any machine did not finish."""
    unfinished = [i for i in view.get("items", []) if _state(i) in UNFINISHED]
    if cli.json_output:
        render.print_json({**answer, "rollout": view})
        return bool(unfinished)
    if view.get("reason"):
        click.echo(f"rollout {view.get('state')}: {view['reason']}", err=True)
    for item in unfinished:
        if item.get("state") != "failed":  # failures were shown as they came
            click.echo(f"{_state(item)}: {label(item)}", err=True)
    return bool(unfinished)


_selecting = bulk_options("[MACHINES]...", "Follow until done; exit 1 if any did not finish.")


@click.command("deploy")
@click.option("--image", required=True, help="The image's name or id (see `edgebox images list`).")
@click.option("--user-data", "user_data", metavar="FILE", help="cloud-init user-data (- : stdin).")
@click.option("--ssh-key", "ssh_keys", multiple=True, metavar="FILE", type=Path,
              help="A public key file for the deployed OS (repeat).")  # fmt: skip
@click.option("--hostname", help="The machine's new host name (one machine only).")
@click.option("--disk", help="The disk to write (kernel name, e.g. sda; default: the agent picks).")
@click.option("--wave", type=click.IntRange(0), default=0, show_default=True,
              help="Machines per wave; 0 deploys all at once.")  # fmt: skip
@click.option(
    "--max-failures",
    "max_failures",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Start no new wave after this many failures (0: never).",
)
@_selecting
def deploy(cli: CliContext, **options: Any) -> None:
    """Deploy an image on machines by MACHINES (system id or hostname) and/or a filter; a
    Ready machine is allocated to you first."""
    body: dict[str, Any] = {"image": options["image"], "wave": options["wave"],
                            "max_failures": options["max_failures"]}  # fmt: skip
    user_data = _read_user_data(options["user_data"])
    if user_data is not None:
        body["user_data"] = user_data
    keys = read_keys(options["ssh_keys"])
    if keys:
        body["ssh_keys"] = keys
    for name in ("hostname", "disk"):
        if options[name]:
            body[name] = options[name]
    _bulk(cli, Action.DEPLOY, body, options, f"Deploying {options['image']} on")


@click.command("release")
@click.option("--erase", type=click.Choice(["none", "quick", "full", "secure"]),
              default="none", show_default=True, help="How to erase the disks first.")  # fmt: skip
@_selecting
def release(cli: CliContext, **options: Any) -> None:
    """Release machines (an Allocated one is just freed): erase as asked, power off, Ready."""
    _bulk(cli, Action.RELEASE, {"erase": options["erase"]}, options, "Releasing")


@click.command("allocate")
@click.option("--arch", help="e.g. amd64, arm64.")
@click.option("--min-cores", "min_cores", type=click.IntRange(1), help="At least this many cores.")
@click.option("--min-memory", "min_memory", metavar="SIZE",
              help="At least this much memory: 16G, 512M (MiB if bare).")  # fmt: skip
@click.option("--tag", "tags", multiple=True, help="A tag it must have (repeat).")
@click.option("--not-tag", "not_tags", multiple=True, help="A tag it must not have (repeat).")
@click.option("--pool", help="Its pool.")
@click.option("--zone", help="Its zone.")
@click.option("--count", type=click.IntRange(1, 10_000), default=1, show_default=True)
@click.option("--comment", help="Why (kept in each machine's event log).")
@json_option
@pass_cli
def allocate(
    cli: CliContext, *, arch: str | None, min_cores: int | None, min_memory: str | None,
    tags: Sequence[str], not_tags: Sequence[str], pool: str | None, zone: str | None,
    count: int, comment: str | None,
) -> None:  # fmt: skip
    """Allocate Ready machines that match, to you: all of --count, or none."""
    given = {"arch": arch, "min_cores": min_cores, "pool": pool, "zone": zone,
             "tags": list(tags), "not_tags": list(not_tags),
             "min_memory": parse_memory(min_memory) if min_memory else None}  # fmt: skip
    body: dict[str, Any] = {
        "constraints": {k: v for k, v in given.items() if v not in (None, [])},
        "count": count,
    }
    if comment:
        body["comment"] = comment
    answer = call_api(cli, lambda client: client.post("/allocate", body))
    if cli.json_output:
        render.print_json(answer)
        return
    machines = answer.get("machines", [])
    render.print_table(
        ("SYSTEM_ID", "HOSTNAME", "POOL", "ZONE"),
        ([render.field(m, "system_id"), render.field(m, "hostname"), render.field(m, "pool"),
          render.field(m, "zone")] for m in machines),
    )  # fmt: skip


@click.command("deployment")
@click.argument("ident", metavar="MACHINE")
@click.option("--log", "log_bytes", type=click.IntRange(0), default=4096, show_default=True,
              help="Bytes of the agent's log to show (its tail).")  # fmt: skip
@json_option
@pass_cli
def deployment(cli: CliContext, ident: str, log_bytes: int) -> None:
    """Show a machine's latest deploy or release: step, progress, error, log."""

    async def fetch(client: ApiClient) -> JsonObject:
        machine = await find_machine(client, ident)
        path = f"/machines/{path_segment(machine['system_id'])}/deployment"
        view: JsonObject = await client.get(path, [("log", str(log_bytes))])
        return view

    view = call_api(cli, fetch)
    if cli.json_output:
        render.print_json(view)
        return
    progress = view.get("progress") or {}
    image = view.get("image") or {}
    render.print_fields(
        [
            ("machine", f"{label(view)}: {view.get('status')}"),
            ("kind", render.field(view, "kind")),
            ("state", _state(view)),
            ("image", render.text(image.get("name"))),
            ("erase", render.text(view.get("erase"))),
            ("disk", render.text(view.get("disk"))),
            ("progress", f"{progress.get('step') or '-'} {progress.get('done', 0)}"
                         f"/{progress.get('total', 0)} bytes"),
            ("error", render.text(f"{view.get('failed_step')}: {view.get('error')}"
                                  if view.get("error") else None)),
            ("by", f"{view.get('requested_by')} at {render.timestamp(view.get('created_at'))}"),
        ]
    )  # fmt: skip
    log = view.get("log") or ""
    if log:
        click.echo(f"\n--- agent log (last {len(log)} of {view.get('log_size')} bytes) ---")
        click.echo(log, nl=not log.endswith("\n"))


DEPLOY_COMMANDS: tuple[click.Command, ...] = (allocate, deploy, release, deployment)
