"""The script metadata header: finding it, and validating the decoded mapping field by field."""

from __future__ import annotations

from typing import Any

import pytest

from edgebox.domain.script_header import extract_header
from edgebox.domain.script_metadata import (
    HardwareType,
    MetadataError,
    Parallel,
    ParamType,
    ScriptType,
    metadata_from_json,
    metadata_to_json,
    parse_duration,
    validate_metadata,
)

MINIMAL: dict[str, Any] = {"name": "cpu-stress", "type": "testing"}


def check(data: dict[str, Any], lines: dict[str, int] | None = None) -> MetadataError:
    with pytest.raises(MetadataError) as caught:
        validate_metadata(data, lines or {}, header_line=2)
    return caught.value


def test_a_minimal_header_gets_the_defaults() -> None:
    meta = validate_metadata(MINIMAL, {}, 2)
    assert meta.name == "cpu-stress" and meta.type is ScriptType.TESTING
    assert meta.title == "cpu-stress"  # the name, when no title is given
    assert meta.hardware_type is HardwareType.NODE
    assert (meta.timeout, meta.destructive, meta.parallel) == (0, False, Parallel.DISABLED)
    assert meta.parameters == () and meta.results == () and meta.per_device is None


def test_a_full_header() -> None:
    meta = validate_metadata(
        {
            **MINIMAL,
            "title": " CPU stress ",
            "description": "all cores",
            "hardware_type": "cpu",
            "timeout": "1h30m",
            "destructive": True,
            "parallel": "any",
            "parameters": {
                "storage": {"type": "storage", "description": "each disk"},
                "fraction": {"type": "float", "default": 0.1, "min": 0.01, "max": 0.9},
                "label": {"type": "string", "default": "x"},
                "fast": {"type": "boolean", "default": False},
            },
            "results": {"mb_per_s": {"title": "Read", "unit": "MB/s"}, "bare": None},
        },
        {},
        2,
    )
    assert meta.title == "CPU stress" and meta.timeout == 5400 and meta.destructive
    assert [p.type for p in meta.parameters] == [
        ParamType.STORAGE, ParamType.FLOAT, ParamType.STRING, ParamType.BOOLEAN,
    ]  # fmt: skip
    assert meta.per_device is not None and meta.per_device.name == "storage"
    assert [(r.key, r.unit) for r in meta.results] == [("mb_per_s", "MB/s"), ("bare", "")]
    assert metadata_from_json(metadata_to_json(meta)) == meta


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0), (300, 300), ("300", 300), ("5m", 300), ("1h", 3600), ("90s", 90),
     ("1h30m", 5400), ("2m30s", 150), (" 5M ", 300), (60.0, 60)],
)  # fmt: skip
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "", "5 m", "m", "-1", -1, True, 1.5, None, "5d"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_a_bad_timeout_names_its_line_and_what_was_expected() -> None:
    error = check({**MINIMAL, "timeout": "soon"}, {"timeout": 7})
    assert str(error) == "line 7: timeout: expected seconds or a duration like 5m, got 'soon'"
    assert (error.line, error.field) == (7, "timeout")


def test_a_timeout_longer_than_a_week_is_refused() -> None:
    assert "at most 604800 s" in str(check({**MINIMAL, "timeout": "200h"}))


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"type": "testing"}, "name", "this field is required"),
        ({"name": "x"}, "type", "this field is required"),
        ({**MINIMAL, "name": "CPU stress"}, "name", "is not a valid script name"),
        ({**MINIMAL, "name": 5}, "name", "expected text, got 5"),
        ({**MINIMAL, "type": "burn-in"}, "type", "expected commissioning or testing or release"),
        ({**MINIMAL, "hardware_type": "fan"}, "hardware_type", "got 'fan'"),
        ({**MINIMAL, "parallel": "yes"}, "parallel", "expected disabled or instance or any"),
        ({**MINIMAL, "destructive": "no"}, "destructive", "expected true or false, got 'no'"),
        ({**MINIMAL, "tiemout": 5}, "tiemout", "unknown field (known fields here: name,"),
        ({**MINIMAL, "parameters": [1]}, "parameters", "expected a mapping of parameters"),
        ({**MINIMAL, "parameters": {"Disk": {"type": "storage"}}}, "parameters.Disk",
         "a parameter name is lowercase"),
        ({**MINIMAL, "parameters": {"d": {}}}, "parameters.d.type", "this field is required"),
        ({**MINIMAL, "parameters": {"d": "storage"}}, "parameters.d",
         "expected a mapping such as {type: int}"),
        ({**MINIMAL, "parameters": {"d": {"type": "disk"}}}, "parameters.d.type",
         "expected storage or interface or string or int or float or boolean, got 'disk'"),
        ({**MINIMAL, "parameters": {"d": {"type": "storage", "default": "sda"}}},
         "parameters.d.default", "a storage parameter takes no default"),
        ({**MINIMAL, "parameters": {"n": {"type": "int", "default": 1.5}}},
         "parameters.n.default", "expected a int value, got 1.5"),
        ({**MINIMAL, "parameters": {"n": {"type": "int", "default": True}}},
         "parameters.n.default", "expected a int value, got True"),
        ({**MINIMAL, "parameters": {"n": {"type": "string", "min": 1}}},
         "parameters.n.min", "only int and float parameters take min"),
        ({**MINIMAL, "parameters": {"n": {"type": "int", "min": "1"}}},
         "parameters.n.min", "expected a number, got '1'"),
        ({**MINIMAL, "parameters": {"n": {"type": "int", "min": 5, "max": 1}}},
         "parameters.n.max", "max (1) is below min (5)"),
        ({**MINIMAL, "parameters": {"n": {"type": "int", "default": 9, "max": 8}}},
         "parameters.n.default", "the default 9 is outside min..max (None..8)"),
        ({**MINIMAL, "parameters": {"n": {"type": "int", "step": 1}}},
         "parameters.n.step", "unknown field"),
        ({**MINIMAL, "parameters": {"a": {"type": "storage"}, "b": {"type": "interface"}}},
         "parameters.b", "only one storage or interface parameter per script (already: a)"),
        ({**MINIMAL, "results": "speed"}, "results", "expected a mapping of result keys"),
        ({**MINIMAL, "results": {"speed": "fast"}}, "results.speed",
         "expected a mapping such as {title: ...}"),
        ({**MINIMAL, "results": {"speed": {"units": "x"}}}, "results.speed.units",
         "unknown field"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named(data: dict[str, Any], field: str, problem: str) -> None:
    error = check(data)
    assert error.field == field
    assert problem in error.problem, error.problem


def test_a_nested_field_without_a_line_takes_its_parents() -> None:
    error = check(
        {**MINIMAL, "parameters": {"n": {"type": "int", "min": "x"}}},
        {"parameters": 9, "parameters.n": 10},
    )
    assert error.line == 10 and error.field == "parameters.n.min"
    # A missing required field is reported at the header's first line.
    assert check({"type": "testing"}, {"type": 4}).line == 2


def test_not_a_mapping() -> None:
    error = check(["name"])  # type: ignore[arg-type]
    assert str(error) == "line 2: header: expected a mapping of fields, got a list"


SCRIPT = """#!/bin/sh
# A comment before the header is fine.
#   --- edgebox script ---
# name: disk-read
#   parameters:
#     storage: {type: storage}
#
#--- end ---
dd if=$EDGEBOX_DEVICE
"""


def test_the_header_is_found_and_its_lines_kept() -> None:
    header = extract_header(SCRIPT)
    assert header.start_line == 3 and header.first_line == 4
    assert header.yaml_text == ("name: disk-read\n  parameters:\n    storage: {type: storage}\n\n")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("#!/bin/sh\necho hi\n", 1, "no '# --- edgebox script ---' line"),
        ("#!/bin/sh\n# --- edgebox script ---\n# name: x\n", 2, "has no closing"),
        ("#!/bin/sh\n# --- edgebox script ---\nname: x\n# --- end ---\n", 3,
         "must be a '#' comment, got 'name: x'"),
    ],
)  # fmt: skip
def test_a_missing_or_broken_header(text: str, line: int, problem: str) -> None:
    with pytest.raises(MetadataError) as caught:
        extract_header(text)
    assert caught.value.line == line and problem in caught.value.problem
