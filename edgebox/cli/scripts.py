"""`edgebox scripts list|show|upload|delete`: commissioning, testing and release scripts.

`upload FILE` sends the file as it is; the server reads its metadata header and answers a bad
one with the line and the field (`line 7: timeout: expected seconds or a duration like 5m`).
Uploading a name that exists makes a new version; results keep the version they ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from edgebox.cli import render
from edgebox.cli.client import path_segment
from edgebox.cli.context import CliContext, CliUsageError, call_api, json_option, pass_cli

SCRIPT_COLUMNS = ("NAME", "VERSION", "TYPE", "HARDWARE", "TIMEOUT", "PARALLEL", "FLAGS", "TITLE")
TYPES = ("commissioning", "testing", "release")


def duration(seconds: Any) -> str:
    """300 -> 5m, 5400 -> 1h30m, 0 -> none."""
    if not isinstance(seconds, int) or seconds <= 0:
        return "none"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


def _flags(script: Mapping[str, Any]) -> str:
    flags = [
        name
        for name, on in (
            ("builtin", script.get("builtin")),
            ("destructive", script.get("destructive")),
        )
        if on
    ]
    return ",".join(flags) or render.NONE


def script_row(script: Mapping[str, Any]) -> list[str]:
    return [
        render.field(script, "name"),
        render.field(script, "version"),
        render.field(script, "type"),
        render.field(script, "hardware_type"),
        duration(script.get("timeout")),
        render.field(script, "parallel"),
        _flags(script),
        render.field(script, "title"),
    ]


def script_fields(script: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields = [
        (name, render.field(script, key))
        for name, key in (
            ("name", "name"), ("version", "version"), ("type", "type"), ("title", "title"),
            ("description", "description"), ("hardware", "hardware_type"),
        )
    ]  # fmt: skip
    fields += [
        ("timeout", duration(script.get("timeout"))),
        ("parallel", render.field(script, "parallel")),
        ("destructive", render.field(script, "destructive")),
        ("builtin", render.field(script, "builtin")),
        ("created", f"{render.timestamp(script.get('created_at'))} by "
                    f"{render.field(script, 'created_by')}"),
    ]  # fmt: skip
    for index, (name, spec) in enumerate((script.get("parameters") or {}).items()):
        words = [name, spec.get("type", "?")]
        if spec.get("default") is not None:
            words.append(f"default {spec['default']}")
        if spec.get("min") is not None or spec.get("max") is not None:
            words.append(f"{render.text(spec.get('min'))}..{render.text(spec.get('max'))}")
        fields.append(("parameters" if index == 0 else "", " ".join(map(str, words))))
    for index, (key, spec) in enumerate((script.get("results") or {}).items()):
        unit = f" [{spec['unit']}]" if spec.get("unit") else ""
        fields.append(("results" if index == 0 else "", f"{key}: {spec.get('title') or key}{unit}"))
    versions = script.get("versions") or []
    if versions:
        fields.append(("versions", ", ".join(str(v.get("version")) for v in versions)))
    return fields


@click.group()
def scripts() -> None:
    """List, show, upload and delete commissioning, testing and release scripts."""


@scripts.command("list")
@click.option("--type", "type_", type=click.Choice(TYPES), help="Only scripts of this type.")
@json_option
@pass_cli
def list_scripts(cli: CliContext, type_: str | None) -> None:
    """List the current version of every script."""
    query = [("type", type_)] if type_ else []
    page = call_api(cli, lambda client: client.get("/scripts", query))
    items = page.get("items", [])
    if cli.json_output:
        render.print_json(items)
        return
    if not items:
        click.echo("No scripts.", err=True)
        return
    render.print_table(SCRIPT_COLUMNS, (script_row(s) for s in items))


@scripts.command("show")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(1), help="An older version.")
@click.option("--content", is_flag=True, help="Print only the script itself.")
@json_option
@pass_cli
def show(cli: CliContext, name: str, version: int | None, content: bool) -> None:
    """Show a script: its metadata and versions, or (--content) its text."""
    query = [("version", str(version))] if version else []
    script = call_api(cli, lambda client: client.get(f"/scripts/{path_segment(name)}", query))
    if cli.json_output:
        render.print_json(script)
    elif content:
        click.echo(script.get("content", ""), nl=False)
    else:
        render.print_fields(script_fields(script))


@scripts.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_cli
def upload(cli: CliContext, file: Path) -> None:
    """Upload a script file (a new version if its name exists)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliUsageError(f"cannot read {file}: {exc}") from exc
    script = call_api(cli, lambda client: client.post("/scripts", {"content": text}))
    if cli.json_output:
        render.print_json(script)
    else:
        click.echo(f"Uploaded {script['name']} version {script['version']} ({script['type']}).")


@scripts.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def delete(cli: CliContext, name: str, yes: bool) -> None:
    """Delete a script you uploaded (every version; old results keep theirs)."""
    if not yes:
        click.confirm(f"Delete script {name} (all versions)?", abort=True)
    call_api(cli, lambda client: client.delete(f"/scripts/{path_segment(name)}"))
    click.echo(f"Deleted script {name}.")
