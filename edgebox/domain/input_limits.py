"""Reading numbers and JSON that anyone may have sent, within limits that bound their cost.

- `parse_whole_number`: a query or path integer. Python's `int()` takes more than a person
  means (`"١٢"`, `" 1"`, `"1_000"`, `"+1"`) and `str.isdigit()` takes `"³"`, which `int()`
  then refuses; a value past SQLite's 2^63-1 overflows when bound; more than 4,300 digits
  raise. Only ASCII digits are taken here, at most 20 of them, within a range.
- `decode_json`: a request body. Python's `json` recurses once per level and raises
  `RecursionError` near 1,000 levels; it takes `NaN` and `Infinity` (which no JSON encoder
  writes back as JSON) and turns `1e999` into infinity. Here a document is at most
  `MAX_JSON_DEPTH` levels deep, numbers are finite and integers fit in 64 bits.
- `check_depth`: the same depth rule for data decoded elsewhere (a YAML result file).
"""

from __future__ import annotations

import json
import math
from typing import Final

SQLITE_MAX_INT: Final = 2**63 - 1
SQLITE_MIN_INT: Final = -(2**63)
MAX_DIGITS: Final = 20  # 2^63-1 has 19 digits; one leading zero is fine
MAX_JSON_DEPTH: Final = 64


class JsonInputError(ValueError):
    """A JSON document that is not taken; the message says why, for the sender."""


def parse_whole_number(text: str, low: int = 0, high: int = SQLITE_MAX_INT) -> int:
    """`text` as an integer from `low` to `high`: ASCII digits only, or ValueError."""
    if (
        not text
        or len(text) > MAX_DIGITS
        or not text.isascii()
        or not text.isdigit()
        or not low <= int(text) <= high
    ):
        raise ValueError(f"expected a whole number from {low} to {high}, got {_show(text)}")
    return int(text)


def decode_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> object:
    """The JSON value in `raw` (UTF-8), or JsonInputError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite, parse_int=_int64)
    except RecursionError:
        raise JsonInputError(f"nested deeper than {max_depth} levels") from None
    except JsonInputError:
        raise
    except ValueError as exc:  # json.JSONDecodeError is one
        raise JsonInputError(f"not valid JSON: {exc}") from None
    check_depth(value, max_depth)
    return value


def check_depth(value: object, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise JsonInputError if lists and mappings in `value` nest deeper than `max_depth`.

    Iterative, so that the check itself cannot run out of stack."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > max_depth:
            raise JsonInputError(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


def _no_constant(name: str) -> object:
    raise JsonInputError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonInputError(f"the number {_show(text)} is too large")
    return value


def _int64(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS or not SQLITE_MIN_INT <= int(text) <= SQLITE_MAX_INT:
        raise JsonInputError(
            f"the integer {_show(text)} is outside {SQLITE_MIN_INT} to {SQLITE_MAX_INT}"
        )
    return int(text)


def _show(text: str) -> str:
    """`text` quoted, cut to a length that a message and a log line can hold."""
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"
