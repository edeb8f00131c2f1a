"""What every command shares: the target server, the output mode, and how errors leave.

A command is a plain click function that builds one coroutine and hands it to `call_api`, which
runs it under `asyncio.run` with an `ApiClient` and turns the client's exceptions into exit
codes, always as a one-line `error: ...` on stderr and never as a traceback:

    1  the server said no (any API error)
    2  usage: bad arguments, or no token to send (click uses 2 for usage errors too)
    3  the server cannot be reached
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import click

from edgebox.cli.client import ApiClient, ApiError, ServerUnreachable
from edgebox.cli.credentials import (
    LoginFileError,
    Target,
    load_login,
    login_file_path,
    resolve_target,
)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

EXIT_API_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3


class CliError(click.ClickException):
    """An error shown as `error: <message>` on stderr; the API refused (exit 1).

    The exit code is a class attribute (click declares it a ClassVar), one subclass per code.
    """

    exit_code = EXIT_API_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class CliUsageError(CliError):
    """Bad usage or nothing to authenticate with (exit 2)."""

    exit_code = EXIT_USAGE


class CliUnreachable(CliError):
    """The server did not answer (exit 3)."""

    exit_code = EXIT_UNREACHABLE


@dataclass(frozen=True)
class CliContext:
    """The group's options; commands receive it with `@pass_cli`.

    `url` and `token` are what the flags or environment gave (None: not given). The saved login
    is read only when a command needs the target, so that `edgebox logout` still works when
    that file is damaged.
    """

    url: str | None = None
    token: str | None = None
    json_output: bool = False
    login_path: Path = field(default_factory=login_file_path)

    @cached_property
    def target(self) -> Target:
        saved = None
        if self.url is None or not self.token:
            try:
                saved = load_login(self.login_path)
            except LoginFileError as exc:
                raise CliUsageError(str(exc)) from exc
        try:
            return resolve_target(self.url, self.token, saved)
        except ValueError as exc:
            raise CliUsageError(f"bad --url or EDGEBOX_URL: {exc}") from exc

    def require_token(self) -> str:
        target = self.target
        if target.token:
            return target.token
        if target.saved_login_url:
            raise CliUsageError(
                f"no API token for {target.url} (the saved login is for "
                f"{target.saved_login_url}); pass --token or set EDGEBOX_TOKEN"
            )
        raise CliUsageError("no API token: run 'edgebox login URL TOKEN' or set EDGEBOX_TOKEN")


pass_cli = click.make_pass_decorator(CliContext)


def _set_json_output(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    current = ctx.find_object(CliContext)
    if value and current is not None:
        ctx.obj = dataclasses.replace(current, json_output=True)


def json_option(command: F) -> F:
    """Accept `--json` after the subcommand too (`edgebox machines list --json`)."""
    option = click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_json_output,
        help="Print machine-readable JSON.",
    )
    return option(command)


def error_for_api(exc: ApiError) -> CliError:
    message = str(exc)
    if exc.status == 401:
        message += " (check the token: 'edgebox login URL TOKEN' or EDGEBOX_TOKEN)"
    return CliError(message)


def call_api(
    cli: CliContext,
    work: Callable[[ApiClient], Awaitable[T]],
    *,
    authenticated: bool = True,
) -> T:
    """Run `work` with a client for the target server; map failures to `CliError`."""
    token = cli.require_token() if authenticated else cli.target.token

    async def run() -> T:
        async with ApiClient(cli.target.url, token) as client:
            return await work(client)

    try:
        return asyncio.run(run())
    except ApiError as exc:
        raise error_for_api(exc) from exc
    except ServerUnreachable as exc:
        raise CliUnreachable(str(exc)) from exc
