"""The `edgebox` command-line client: the click group and `main()`.

The CLI talks to a running daemon over its HTTP API only, so it works the same against the box
on the desk and one across the WAN. `edgebox serve` is not here: `edgebox/__main__.py` sends it
to the daemon before this group is ever built, which keeps click and rich out of the daemon.
"""

from __future__ import annotations

import os
import sys

import click

from edgebox import __version__
from edgebox.cli.actions import ACTION_COMMANDS
from edgebox.cli.commissioning import COMMISSIONING_COMMANDS
from edgebox.cli.context import CliContext
from edgebox.cli.deploy import DEPLOY_COMMANDS
from edgebox.cli.dhcp import dhcp
from edgebox.cli.events import events
from edgebox.cli.images import images
from edgebox.cli.login import login, logout, status
from edgebox.cli.machines import machines
from edgebox.cli.power import power
from edgebox.cli.scripts import scripts
from edgebox.cli.tags import tags
from edgebox.cli.tokens import token

_EPILOG = """\b
Run the daemon itself with:  edgebox serve [--config PATH]

\b
The server and token come from --url/--token, then EDGEBOX_URL/EDGEBOX_TOKEN, then the
login saved by 'edgebox login URL TOKEN', and the URL defaults to http://127.0.0.1:5240.
Exit codes: 0 ok, 1 the server refused, 2 usage or no token, 3 the server cannot be reached.
"""


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="EDGEBOX_URL",
    metavar="URL",
    help="Server URL, e.g. http://10.0.0.1:5240 [env EDGEBOX_URL].",
)
@click.option(
    "--token",
    envvar="EDGEBOX_TOKEN",
    metavar="TOKEN",
    help="API token [env EDGEBOX_TOKEN].",
)
@click.option("--json", "json_output", is_flag=True, help="Print machine-readable JSON.")
@click.version_option(__version__, prog_name="edgebox")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, json_output: bool) -> None:
    """Manage the machines of an edgebox site from the command line."""
    ctx.obj = CliContext(url=url or None, token=token or None, json_output=json_output)


for _command in ACTION_COMMANDS:
    machines.add_command(_command)
for _command in (login, logout, status, machines, events, token, dhcp, power, tags):
    cli.add_command(_command)
cli.add_command(images)
cli.add_command(scripts)
for _command in (*COMMISSIONING_COMMANDS, *DEPLOY_COMMANDS):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run one CLI command; return its exit code (see the group's help for their meaning)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="edgebox", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except BrokenPipeError:
        # `edgebox machines list | head`: the reader left, which is not an error of ours.
        # Point stdout at /dev/null so that the interpreter's final flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
