"""Output for people (tables, aligned fields) and for programs (JSON).

Tables have no borders and one header line, like `kubectl get` or `ip -br`, so that `grep`,
`awk` and `sort` work on them. On a terminal rich draws them (bold header, columns folded to
the window); in a pipe they are plain aligned text, one row per line whatever its length.
Values from the server are printed as text, never as rich markup (a tag may well contain "[").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

NONE: Final = "-"


def make_console() -> Console:
    return Console(file=sys.stdout, highlight=False, markup=False, emoji=False)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_json_line(value: Any) -> None:
    """One object per line (JSON Lines), for streams that a program reads as they come."""
    click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    if sys.stdout.isatty():
        _print_rich_table(headers, rows)
    else:
        _print_plain_table(headers, list(rows))


def _print_rich_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """On a terminal: bold headers, and columns that fold to fit the window."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    make_console().print(table)


def _print_plain_table(headers: Sequence[str], rows: list[Sequence[str]]) -> None:
    """In a pipe: one line per row, columns two spaces apart, no styling and no wrapping.

    This is also far quicker than rich for thousands of rows.
    """
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    click.echo(
        "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )
    )


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    """`name:  value` lines with the values aligned, for one object.

    An empty name continues the value above on a line of its own (a list of interfaces).
    """
    width = max((len(name) for name, _ in fields), default=0) + 1
    for name, value in fields:
        label = f"{name}:" if name else ""
        click.echo(f"{label:<{width}}  {value}")


def text(value: Any) -> str:
    """A JSON value as table text: None is "-", booleans are yes/no, lists are comma-joined."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or NONE
    return str(value)


def timestamp(value: Any) -> str:
    """An API timestamp shortened to the second, in UTC: 2026-11-26T05:38:53Z."""
    if not isinstance(value, str) or not value:
        return NONE
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def field(obj: Mapping[str, Any], key: str) -> str:
    return text(obj.get(key))


def size(n: Any) -> str:
    """Bytes as people read them: `512 B`, `1.5 GiB`."""
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
