"""`edgebox token ...`: list, create and revoke API tokens.

The server keeps only a hash of each token, so a new token's secret is printed exactly once, on
stdout by itself (easy to capture in a script), with the warning on stderr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from edgebox.cli import render
from edgebox.cli.client import path_segment
from edgebox.cli.context import CliContext, call_api, json_option, pass_cli

TOKEN_COLUMNS = ("ID", "NAME", "USER", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED")
ROLES = ("admin", "operator", "viewer")


def token_row(token: Mapping[str, Any]) -> list[str]:
    return [
        render.field(token, "id"),
        render.field(token, "name"),
        render.field(token, "user"),
        render.field(token, "role"),
        render.field(token, "prefix"),
        render.timestamp(token.get("created_at")),
        render.timestamp(token.get("last_used_at")),
        render.timestamp(token.get("revoked_at")),
    ]


@click.group("token")
def token() -> None:
    """Manage API tokens."""


@token.command("list")
@json_option
@pass_cli
def list_tokens(cli: CliContext) -> None:
    """List API tokens (their secrets are never shown again)."""
    page = call_api(cli, lambda client: client.get("/tokens"))
    items = page.get("items", [])
    if cli.json_output:
        render.print_json(items)
    elif not items:
        click.echo("No tokens.", err=True)
    else:
        render.print_table(TOKEN_COLUMNS, (token_row(item) for item in items))


@token.command("create")
@click.argument("name")
@click.option("--user", help="Whose token this is (default: the caller).")
@click.option("--role", type=click.Choice(ROLES), help="What it may do (server default).")
@json_option
@pass_cli
def create(cli: CliContext, name: str, user: str | None, role: str | None) -> None:
    """Create a token and print its secret, once."""
    body = {"name": name}
    if user is not None:
        body["user"] = user
    if role is not None:
        body["role"] = role
    created = call_api(cli, lambda client: client.post("/tokens", body))
    if cli.json_output:
        render.print_json(created)
    else:
        click.echo(
            f"Created token {render.field(created, 'id')} ({render.field(created, 'name')}, "
            f"user {render.field(created, 'user')}, role {render.field(created, 'role')}).",
            err=True,
        )
        click.echo(render.field(created, "token"))
    click.echo("warning: this is the only time the token is shown; store it now.", err=True)


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(min=1))
@json_option
@pass_cli
def revoke(cli: CliContext, token_id: int) -> None:
    """Revoke a token; requests that use it fail from now on."""
    revoked = call_api(cli, lambda client: client.delete(f"/tokens/{path_segment(token_id)}"))
    if cli.json_output:
        render.print_json(revoked)
    else:
        name = render.field(revoked, "name") if isinstance(revoked, dict) else "?"
        click.echo(f"Revoked token {token_id} ({name}).")
