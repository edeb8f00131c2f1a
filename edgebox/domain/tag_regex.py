"""Regular expressions for `matches`, limited to the ones that cannot take exponential time.

Python's `re` backtracks and has no timeout, so a pattern like `(a+)+$` can spin for minutes on
a 30-character string, and `.*.*.*.*x` for seconds on a few hundred. A tag definition runs over
every machine in the writer's transaction, so a slow pattern would stall every write. The
patterns allowed here are the useful ones for hardware strings (`^PowerEdge R[67]`, `EPYC 7\\d\\d3`)
and exclude what makes backtracking blow up:

- at most MAX_PATTERN characters;
- no repetition of a group (`(...)*`, `(...)+`, `(...){2,}`): nested or alternated repetition
  is the exponential case, and a group may still be optional (`(...)?`);
- at most MAX_REPEATS repetition operators (`*`, `+`, `{m,n}`) in all: k of them over a
  string of length n cost up to n^k steps;
- no back-references (`\\1`, `(?P=name)`), which make matching NP-hard in general;

and the subject is cut to its first MAX_SUBJECT characters (inventory strings are short).
With two repeats over 256 characters the worst case is some 65,000 steps.
"""

from __future__ import annotations

import re

MAX_PATTERN = 100
MAX_REPEATS = 2
MAX_SUBJECT = 256

_COUNTED = re.compile(r"\{\d*,?\d*\}")


class UnsafePattern(ValueError):
    """The pattern is refused; the message says why."""


def safe_pattern(text: str) -> re.Pattern[str]:
    if len(text) > MAX_PATTERN:
        raise UnsafePattern(f"the pattern is longer than {MAX_PATTERN} characters")
    _check_shape(text)
    try:
        return re.compile(text)
    except re.error as exc:
        raise UnsafePattern(f"not a regular expression: {exc}") from None


def _check_shape(text: str) -> None:
    repeats = 0
    previous_was_group = False
    pos = 0
    while pos < len(text):
        char = text[pos]
        after_group, previous_was_group = previous_was_group, False
        if char == "\\":
            if text[pos + 1 : pos + 2].isdigit() and text[pos + 1] != "0":
                raise UnsafePattern("back-references (\\1) are not allowed")
            pos += 2
        elif char == "[":
            pos = _class_end(text, pos)
        elif char == "(":
            if text.startswith("(?P=", pos):
                raise UnsafePattern("back-references ((?P=name)) are not allowed")
            pos += 1
        elif char == ")":
            previous_was_group = True
            pos += 1
        elif char in "*+" or (char == "{" and _COUNTED.match(text, pos)):
            if after_group:
                raise UnsafePattern(
                    "a group may not be repeated ((...)* or (...)+ can take exponential time)"
                )
            repeats += 1
            if repeats > MAX_REPEATS:
                raise UnsafePattern(
                    f"at most {MAX_REPEATS} repetitions (*, +, {{m,n}}) in one pattern"
                )
            counted = _COUNTED.match(text, pos) if char == "{" else None
            pos = counted.end() if counted else pos + 1
            if text[pos : pos + 1] in ("?", "+"):  # lazy or possessive: still one repetition
                pos += 1
        else:
            pos += 1


def _class_end(text: str, start: int) -> int:
    """The position after the character class that opens at `start` (`[...]`)."""
    pos = start + 1
    if text[pos : pos + 1] == "^":
        pos += 1
    if text[pos : pos + 1] == "]":  # a ']' first in a class is a literal
        pos += 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == "]":
            return pos + 1
        else:
            pos += 1
    return pos  # unclosed: re.compile reports it
