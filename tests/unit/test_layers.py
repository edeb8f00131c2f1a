"""Layering facts that import-linter cannot state: wire/ and domain/ use only the standard
library, and the daemon's modules never load the CLI toolkit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import edgebox

PACKAGE = Path(edgebox.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_wire_and_domain_import_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"edgebox", "__future__"}
    offenders = {}
    for layer in ("wire", "domain"):
        for path in (PACKAGE / layer).rglob("*.py"):
            bad = _imports(path) - allowed
            bad |= _imports(path) & {"asyncio", "socket", "sqlite3", "selectors"}
            if bad:
                offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert not offenders


def test_the_daemon_does_not_load_click_or_rich() -> None:
    code = (
        "import sys, edgebox.app, edgebox.__main__\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
