"""Script headers and result files through YAML: errors name the script's own line numbers."""

from __future__ import annotations

import time

import pytest

from edgebox.domain.script_metadata import MetadataError, ScriptType
from edgebox.domain.script_results import ResultFileError, ResultStatus
from edgebox.services.script_service import builtin_sources
from edgebox.services.script_yaml import MAX_NODES, read_metadata, read_result_file

CONTRACT_EXAMPLE = """#!/bin/sh
# --- edgebox script ---
# name: cpu-stress
# title: CPU stress
# description: all cores, checksum verified
# type: testing              # commissioning | testing | release
# hardware_type: cpu         # node | cpu | memory | storage | network | gpu
# timeout: 300               # seconds, or "5m"; 0 = none
# destructive: false
# parallel: any              # disabled | instance | any
# parameters:
#   storage: {type: storage}         # one result per disk; EDGEBOX_DEVICE=/dev/NAME
#   fraction: {type: float, default: 0.1, min: 0.01, max: 0.9}
# results:
#   mb_per_s: {title: Read throughput, unit: MB/s}
# --- end ---
exit 0
"""


def error_of(text: str) -> str:
    with pytest.raises(MetadataError) as caught:
        read_metadata(text)
    return str(caught.value)


def test_the_contract_example_parses() -> None:
    meta = read_metadata(CONTRACT_EXAMPLE)
    assert (meta.name, meta.type, meta.timeout) == ("cpu-stress", ScriptType.TESTING, 300)
    assert [p.name for p in meta.parameters] == ["storage", "fraction"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("# timeout: 300 ", "# timeout: soon",
         "line 8: timeout: expected seconds or a duration like 5m, got 'soon'"),
        ("# hardware_type: cpu ", "# hardwaretype: cpu",
         "line 7: hardwaretype: unknown field"),
        ("min: 0.01, max: 0.9", "min: 0.5, max: 0.9",
         "line 13: parameters.fraction.default: the default 0.1 is outside min..max (0.5..0.9)"),
        ("unit: MB/s}", "unit: MB/s", "line 16: header: not valid YAML"),
        ("# name: cpu-stress\n", "", "line 2: name: this field is required"),
        ("#   storage: {type: storage}", "#   storage: {type: disks}",
         "line 12: parameters.storage.type: expected storage or interface"),
    ],
)  # fmt: skip
def test_errors_point_at_the_line_in_the_script(old: str, new: str, message: str) -> None:
    assert old in CONTRACT_EXAMPLE
    assert error_of(CONTRACT_EXAMPLE.replace(old, new)).startswith(message)


def test_binary_or_huge_scripts_are_refused() -> None:
    assert "NUL" in error_of(CONTRACT_EXAMPLE + "\0")
    assert "at most 1048576 bytes" in error_of(CONTRACT_EXAMPLE + "#" * (1 << 20))


def test_every_builtin_script_has_a_valid_header() -> None:
    sources = builtin_sources()
    names = {read_metadata(s.text).name for s in sources}
    assert "edgebox-inventory" in names and "gpu-presence" in names
    for source in sources:
        assert read_metadata(source.text).name == source.filename


def test_result_files() -> None:
    parsed = read_result_file(b"status: degraded\nresults:\n  mb_per_s: 812.5\n")
    assert parsed.status is ResultStatus.DEGRADED and parsed.results == {"mb_per_s": 812.5}
    assert read_result_file(b"").status is None
    with pytest.raises(ResultFileError, match="not valid YAML at line 2"):
        read_result_file(b"status: [passed\n")
    with pytest.raises(ResultFileError, match="not UTF-8 text"):
        read_result_file(b"status: \xff\n")
    with pytest.raises(ResultFileError, match="status: expected one of"):
        read_result_file(b"status: great\n")


def laughs(levels: int, width: int = 9) -> bytes:
    """A "billion laughs": each level an anchored list of `width` aliases of the one before."""
    lines = ["status: passed", "results:", f"  l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return ("\n".join(lines) + "\n").encode()


def test_a_billion_laughs_is_refused_before_it_expands() -> None:
    raw = laughs(9)  # 9**10 values once expanded, in under 600 bytes
    assert len(raw) < 600
    started = time.monotonic()
    with pytest.raises(ResultFileError) as caught:
        read_result_file(raw)
    assert str(caught.value) == f"more than {MAX_NODES} values once its aliases are expanded"
    assert time.monotonic() - started < 0.5
    # A few aliases are fine: 9**3 values.
    assert len(read_result_file(laughs(2)).results) == 3


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"results: {a: &a [*a]}\n", "an alias refers to a node that contains it"),
        (b"results: {a: " + b"[" * 70 + b"]" * 70 + b"}\n", "nested deeper than 64 levels"),
        (b"results: {a: " + b"[" * 5000 + b"]" * 5000 + b"}\n", "not valid YAML"),
        (b"results: {a: 2001-13-45}\n", "a value cannot be read: month must be in 1..12"),
        (b"results: {a: !!float x}\n", "a value cannot be read"),
        (b"results: {a: 1}\n" + b"#" * (1024 * 1024), "larger than 1048576 bytes"),
    ],
)
def test_result_files_past_the_limits(raw: bytes, message: str) -> None:
    with pytest.raises(ResultFileError) as caught:
        read_result_file(raw)
    assert message in str(caught.value)


def test_a_header_with_nested_aliases_is_refused() -> None:
    bomb = "\n".join(f"# x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, 9))
    text = CONTRACT_EXAMPLE.replace(
        "# --- end ---", f"# x0: &x0 [a, a, a, a, a, a, a, a, a]\n{bomb}\n# --- end ---"
    )
    assert f"more than {MAX_NODES} values" in error_of(text)
    dated = CONTRACT_EXAMPLE.replace("# destructive: false", "# destructive: 2001-13-45")
    assert "a value cannot be read: month must be in 1..12" in error_of(dated)
