"""The `edgebox` command: `edgebox serve` runs the daemon, everything else is the CLI.

The daemon path never imports the CLI toolkit (click, rich: ~30 MiB of RSS that a switch
should not pay for), so the split happens here, before either is imported.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        from edgebox.app import main_serve  # noqa: PLC0415 (see the module docstring)

        return main_serve(args[1:])
    if args[:1] == ["lab"]:
        from edgebox.lab import main as lab_main  # noqa: PLC0415

        return lab_main(args[1:])
    if args[:1] == ["boot-resources"]:  # local files, like serve: no API, no CLI toolkit
        from edgebox.app import main_boot_resources  # noqa: PLC0415

        return main_boot_resources(args[1:])
    from edgebox.cli.main import main as cli_main  # noqa: PLC0415

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
