"""The install list covers every tool the tests, the benches and the lab call.

A machine that already has a tool hides a missing install step (CI once stayed green while
scripts/install-lab-packages installed neither tftp-hpa nor atftp). So this check does not ask
the machine: it reads the sources for every tool they name and proves each is listed in
scripts/lab-packages under a package; where the tool exists here, `dpkg -S` must name that
same package, so a wrong line is caught too.

A tool is named, in tests/, bench/, edgebox/lab/ and the scripts, by
- `skip_unless_lab(...)` and `require_root_and_tools(...)`: each argument a string, a module
  or class constant (`*TOOLS`), or an item of one (`TOOLS[kind]`: all its values);
- `which("tool")` and `shutil.which("tool")` with a literal;
- a module or class constant named `TOOLS` or `tools` (a tuple of tools, or a dict whose keys
  are tools), and the lab's `FILES` (paths);
- `for tool in A B C; do` and `command -v tool` in the shell scripts.
An argument this cannot resolve fails the test: the declaration has to stay readable.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "scripts" / "lab-packages"
SOURCES = ("tests", "bench", "edgebox/lab")
# Where the declaring functions are defined (they pass their arguments on) and this file.
NOT_SCANNED = ("tests/lab/processes.py", "tests/unit/test_lab_packages.py")
SCRIPTS = ("scripts/build-image", "scripts/fetch-loaders", "scripts/run")
DECLARING_CALLS = {"skip_unless_lab", "require_root_and_tools"}
CONSTANT_NAMES = {"TOOLS", "tools", "FILES"}
# Provided by the base system of every Debian (Essential: yes, or the shell itself), so they
# need no line; the test still proves each is essential where dpkg can tell.
ESSENTIAL = {"sh", "sleep", "true", "kill", "cat", "sha256sum", "install", "mktemp", "ls"}


def parse_table(text: str) -> dict[str, str]:
    """tool or path -> package, from scripts/lab-packages' lines."""
    provided: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        for tool in words[1:]:
            assert tool not in provided, f"{tool} is on two lines of {TABLE.name}"
            provided[tool] = words[0]
    return provided


def table_packages(text: str) -> list[str]:
    return [words[0] for line in text.splitlines() if (words := line.split("#", 1)[0].split())]


class Unresolved(Exception):
    pass


def _strings(node: ast.expr, constants: dict[str, ast.expr]) -> list[str]:
    """The tool names an argument stands for."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Starred):
        return _strings(node.value, constants)
    if isinstance(node, ast.Name) and node.id in constants:
        return _strings(constants[node.id], constants)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        table = constants.get(node.value.id)
        if isinstance(table, ast.Dict):
            return [s for value in table.values for s in _strings(value, constants)]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for item in node.elts for s in _strings(item, constants)]
    if isinstance(node, ast.Dict):  # tool -> package: the keys are the tools
        return [s for key in node.keys if key is not None for s in _strings(key, constants)]
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "Path" and node.args:
        return _strings(node.args[0], constants)
    raise Unresolved(ast.unparse(node))


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name) and isinstance(node.value, ast.expr):
            found.setdefault(target.id, node.value)
    return found


def python_tools(
    path: Path, shared: dict[str, ast.expr] | None = None
) -> Iterator[tuple[str, str]]:
    """(tool, where) for every tool a Python source names; `shared` holds the constants of
    the other sources, for names a module imports."""
    tree = ast.parse(path.read_text(), str(path))
    constants = {**(shared or {}), **_constants(tree)}
    where = str(path.relative_to(ROOT))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            value = node.value
            if names & CONSTANT_NAMES and value is not None and not _is_empty(value):
                try:
                    tools = _strings(value, constants)
                except Unresolved as exc:
                    raise AssertionError(
                        f"{where}:{node.lineno}: cannot tell which tools {exc} names"
                    ) from None
                for tool in tools:
                    yield tool, f"{where}:{node.lineno}"
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func).rsplit(".", 1)[-1]
        if name in DECLARING_CALLS:
            for arg in node.args:
                try:
                    tools = _strings(arg, constants)
                except Unresolved as exc:
                    raise AssertionError(
                        f"{where}:{node.lineno}: cannot tell which tools {name}({exc}) names; "
                        "pass strings or a module constant"
                    ) from None
                for tool in tools:
                    yield tool, f"{where}:{node.lineno}"
        elif name == "which" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value, f"{where}:{node.lineno}"


def _is_empty(node: ast.expr) -> bool:
    return isinstance(node, ast.Tuple | ast.List | ast.Dict) and not (
        node.elts if not isinstance(node, ast.Dict) else node.keys
    )


def shell_tools(path: Path) -> Iterator[tuple[str, str]]:
    where = str(path.relative_to(ROOT))
    for number, line in enumerate(path.read_text().splitlines(), 1):
        loop = re.search(r"for tool in ([^;]+); do", line)
        if loop:
            for tool in loop.group(1).split():
                if not tool.startswith(("$", '"')):
                    yield tool, f"{where}:{number}"
        for tool in re.findall(r"command -v ([A-Za-z][\w.+-]*)", line):
            yield tool, f"{where}:{number}"


def collect() -> dict[str, list[str]]:
    """tool -> the places that name it."""
    found: dict[str, list[str]] = {}
    files = [
        path
        for source in SOURCES
        for path in sorted((ROOT / source).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in NOT_SCANNED
    ]
    shared: dict[str, ast.expr] = {}
    for path in files:
        for name, value in _constants(ast.parse(path.read_text())).items():
            if name not in CONSTANT_NAMES:
                shared.setdefault(name, value)
    pairs = [pair for path in files for pair in python_tools(path, shared)]
    pairs += [pair for script in SCRIPTS for pair in shell_tools(ROOT / script)]
    for tool, where in pairs:
        found.setdefault(tool, []).append(where)
    return found


def test_collector_reads_the_ways_tools_are_named(tmp_path: Path) -> None:
    sample = ROOT / "tests" / "unit" / "_sample_tools.py"
    sample.write_text(
        'import shutil\nTOOLS = ("alpha", "beta")\nKINDS = {"x": "gamma"}\n'
        'class Server:\n    tools = ("delta",)\n'
        "def t(kind):\n"
        '    skip_unless_lab(*TOOLS, "epsilon")\n    skip_unless_lab(KINDS[kind])\n'
        '    shutil.which("zeta")\n'
    )
    try:
        tools = {tool for tool, _ in python_tools(sample)}
        sample.write_text("def t(names):\n    skip_unless_lab(*names)\n")
        with pytest.raises(AssertionError, match="cannot tell which tools"):
            list(python_tools(sample))
    finally:
        sample.unlink()
    assert tools == {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}


def test_every_tool_is_on_the_install_list() -> None:
    text = TABLE.read_text()
    provided = parse_table(text)
    installed = set(table_packages(text))
    used = collect()
    # Tools the test library itself always needs (every lab runs `ip`).
    used.setdefault("ip", []).append("tests/lab/processes.py (always checked)")
    missing = {
        tool: places
        for tool, places in used.items()
        if tool not in provided and tool not in ESSENTIAL
    }
    lines = [f"  {tool} (named at {', '.join(places[:3])})" for tool, places in missing.items()]
    assert not missing, "tools the tests name that no line of scripts/lab-packages provides:\n" + (
        "\n".join(lines)
    )
    assert set(provided.values()) <= installed
    # Nothing of this project's own programs sneaks in (they come from the venv).
    assert "edgebox" not in used


def test_the_lab_names_the_same_packages() -> None:
    """`edgebox lab up` names missing packages from its own table; it must agree."""
    from edgebox.lab import FILES, TOOLS  # noqa: PLC0415

    provided = parse_table(TABLE.read_text())
    for tool, package in [*TOOLS.items(), *((str(path), pkg) for path, pkg in FILES.items())]:
        assert provided.get(tool) == package, f"edgebox lab says {tool} is in {package}"


def _dpkg_owners(path: str) -> set[str]:
    # Debian 12 merges /bin into /usr/bin, but dpkg knows each file by the path its package
    # shipped: try both spellings, and the file a symlink points to.
    candidates = {path, os.path.realpath(path)}
    for p in list(candidates):
        candidates.add(p[4:] if p.startswith("/usr/") else "/usr" + p)
    owners: set[str] = set()
    for candidate in candidates:
        out = subprocess.run(
            ["dpkg", "-S", candidate], capture_output=True, text=True, check=False
        ).stdout
        for line in out.splitlines():
            if line.endswith(f": {candidate}"):
                owners |= {p.strip().split(":")[0] for p in line.rsplit(": ", 1)[0].split(",")}
    return owners


def _present(tool: str, path_env: str) -> bool:
    return Path(tool).exists() if tool.startswith("/") else bool(shutil.which(tool, path=path_env))


def test_listed_packages_really_provide_the_tools() -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("no dpkg here: the table cannot be checked against the package database")
        return
    provided = parse_table(TABLE.read_text())
    path_env = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    checked, wrong = 0, []
    for tool, package in sorted(provided.items()):
        where = tool if tool.startswith("/") else shutil.which(tool, path=path_env)
        if where is None or not Path(where).exists():
            continue  # not installed here: nothing to compare with
        owners = _dpkg_owners(where)
        if not owners:
            continue  # installed outside dpkg (a venv, /usr/local): not this table's business
        checked += 1
        if package not in owners:
            wrong.append(f"{tool}: listed under {package}, but dpkg -S says {sorted(owners)}")
    assert not wrong, "\n".join(wrong)
    if os.geteuid() == 0 and os.environ.get("CI"):
        # CI has run scripts/install-lab-packages: every listed tool must be there and checked.
        absent = [tool for tool in provided if not _present(tool, path_env)]
        assert not absent, f"installed by scripts/install-lab-packages, yet missing: {absent}"
        assert checked > 40
