"""`edgebox login`, `edgebox logout` and `edgebox status`."""

from __future__ import annotations

from typing import Any

import click

from edgebox.cli import render
from edgebox.cli.client import ApiClient
from edgebox.cli.context import CliContext, call_api, json_option, pass_cli
from edgebox.cli.credentials import SavedLogin, normalize_url, remove_login, save_login


@click.command("login")
@click.argument("url")
@click.argument("token", required=False)
@pass_cli
def login(cli: CliContext, url: str, token: str | None) -> None:
    """Check a token and save it for later commands.

    The token is checked against the server at URL (GET /api/v1/site) before it is saved.
    Without TOKEN it is asked for (and not echoed), which keeps it out of the shell history.
    The login is saved to $XDG_CONFIG_HOME/edgebox/cli.json (~/.config/...), mode 0600.
    """
    try:
        url = normalize_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from exc
    if token is None:
        token = click.prompt("Token", hide_input=True).strip()
    if not token:
        raise click.BadParameter("the token is empty", param_hint="TOKEN")
    checking = CliContext(url=url, token=token, login_path=cli.login_path)
    site = call_api(checking, lambda client: client.get("/site"))
    save_login(cli.login_path, SavedLogin(url=url, token=token))
    click.echo(
        f"Logged in to {render.field(site, 'name')} ({render.field(site, 'site_id')}) at {url}."
    )
    click.echo(f"Saved to {cli.login_path}.", err=True)


@click.command("logout")
@pass_cli
def logout(cli: CliContext) -> None:
    """Forget the saved login.

    The token itself stays valid on the server; 'edgebox token revoke' ends it.
    """
    if remove_login(cli.login_path):
        click.echo(f"Logged out: removed {cli.login_path}.")
    else:
        click.echo("Not logged in.")


@click.command("status")
@json_option
@pass_cli
def status(cli: CliContext) -> None:
    """Show whether the server is up, its site and version."""

    async def fetch(client: ApiClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        health = await client.get("/health")
        site = await client.get("/site") if cli.target.token else None
        return health, site

    health, site = call_api(cli, fetch, authenticated=False)
    if cli.json_output:
        render.print_json({"url": cli.target.url, "health": health, "site": site})
        return
    site_name = (site or {}).get("name") or health.get("site_name")
    site_id = (site or {}).get("site_id") or health.get("site_id")
    fields = [
        ("url", cli.target.url),
        ("health", render.field(health, "status")),
        ("version", render.text((site or {}).get("version") or health.get("version"))),
        ("site", f"{render.text(site_name)} ({render.text(site_id)})"),
    ]
    if site is not None:
        fields += [
            ("site created", render.timestamp(site.get("created_at"))),
            ("token", "accepted"),
        ]
    else:
        fields.append(("token", "none (run 'edgebox login URL TOKEN' or set EDGEBOX_TOKEN)"))
    render.print_fields(fields)
