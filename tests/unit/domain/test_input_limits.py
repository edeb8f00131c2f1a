"""Numbers and JSON from anyone: text in, a value or the exact refusal out."""

from __future__ import annotations

import json

import pytest

from edgebox.domain.input_limits import (
    MAX_JSON_DEPTH,
    SQLITE_MAX_INT,
    JsonInputError,
    check_depth,
    decode_json,
    parse_whole_number,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("0042", 42), (str(SQLITE_MAX_INT), SQLITE_MAX_INT)],
)
def test_whole_numbers_in_range(text: str, value: int) -> None:
    assert parse_whole_number(text) == value


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("³", "'³'"),  # str.isdigit() says yes, int() says no
        ("١٢", "'١٢'"),  # int() says 12
        (" 1", "' 1'"),
        ("+1", "'+1'"),
        ("-1", "'-1'"),
        ("1_000", "'1_000'"),
        ("0x10", "'0x10'"),
        ("", "''"),
        (str(SQLITE_MAX_INT + 1), f"'{SQLITE_MAX_INT + 1}'"),
        ("9" * 4301, "'99999999999999999999'... (4301 characters)"),
    ],
)
def test_anything_else_is_refused_with_a_short_message(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_whole_number(text)
    assert str(caught.value) == f"expected a whole number from 0 to {SQLITE_MAX_INT}, got {shown}"


def test_a_range_of_its_own() -> None:
    assert parse_whole_number("1000", 1, 1000) == 1000
    with pytest.raises(ValueError, match="from 1 to 1000, got '0'"):
        parse_whole_number("0", 1, 1000)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_up_to_the_depth_limit() -> None:
    assert decode_json(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    value = decode_json(nested(MAX_JSON_DEPTH))
    check_depth(value)  # the same rule for values decoded elsewhere
    assert json.dumps(value).count("[") == MAX_JSON_DEPTH


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_json_deeper_is_refused(depth: int) -> None:
    with pytest.raises(JsonInputError) as caught:
        decode_json(nested(depth))
    assert str(caught.value) == f"nested deeper than {MAX_JSON_DEPTH} levels"
    with pytest.raises(JsonInputError):
        decode_json(b'{"a":' * depth + b"1" + b"}" * depth)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b'{"x": 1e999}', "the number '1e999' is too large"),
        (f"[{2**63}]".encode(), f"the integer '{2**63}' is outside"),
        (f"[{-(2**63) - 1}]".encode(), "is outside"),
        (b"[" + b"9" * 5000 + b"]", "(5000 characters) is outside"),
        (b"\xff\xfe", "not UTF-8 text (byte 0)"),
        (b"{", "not valid JSON: Expecting property name"),
    ],
)
def test_json_that_is_not_json_or_does_not_fit(raw: bytes, message: str) -> None:
    with pytest.raises(JsonInputError) as caught:
        decode_json(raw)
    assert message in str(caught.value)


def test_json_integers_at_the_limits_fit() -> None:
    assert decode_json(f"[{2**63 - 1}, {-(2**63)}]".encode()) == [2**63 - 1, -(2**63)]
