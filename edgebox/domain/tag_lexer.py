"""Tokens of the tag expression language, and the error every refusal of it raises.

The tokenizer knows only the shapes of words: names, numbers, quoted strings, operators and
punctuation. A character outside these is refused where it stands, with a hint when it is a
habit from another language (`=`, `&&`, `!`). Columns are 1-based character offsets into the
whole text (a definition may span lines; the count runs on across them).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MAX_LENGTH = 1000

KEYWORDS = frozenset({"and", "or", "not", "in", "matches", "true", "false", "null"})
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
PUNCTUATION = "()[],."

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A number ends at a character that cannot continue a word, so `256G` is one bad word rather
# than the number 256 followed by the name G.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.])")
_WORDISH = re.compile(r"-?[0-9A-Za-z_.]+")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'"}
_HABITS = {
    "=": "'=' is not an operator here; compare with '=='",
    "&": "use 'and' to join conditions",
    "|": "use 'or' to join conditions",
    "!": "use 'not' to negate a condition ('!=' is 'not equal')",
    "-": "there is no arithmetic; compare a field with a number",
    "+": "there is no arithmetic; compare a field with a number",
    "*": "there is no arithmetic; compare a field with a number",
    "/": "there is no arithmetic; compare a field with a number",
}


class TagExpressionError(ValueError):
    """A definition that is not in the language; the message says where and what was expected."""

    def __init__(self, column: int, problem: str) -> None:
        super().__init__(f"column {column}: {problem}")
        self.column = column
        self.problem = problem


class Kind(enum.Enum):
    NAME = "name"
    KEYWORD = "keyword"
    NUMBER = "number"
    STRING = "string"
    OPERATOR = "operator"
    PUNCT = "punctuation"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # as written
    column: int
    value: str | int | float | None = None  # a number's or a string's value

    def describe(self) -> str:
        """How an error message names this token: "found the name 'foo'"."""
        if self.kind is Kind.END:
            return "end of expression"
        if self.kind is Kind.NAME:
            return f"the name {self.text!r}"
        if self.kind is Kind.NUMBER:
            return f"the number {self.text}"
        if self.kind is Kind.STRING:
            return f"the string {self.text}"
        return f"'{self.text}'"

    def is_(self, text: str) -> bool:
        return self.kind in (Kind.KEYWORD, Kind.OPERATOR, Kind.PUNCT) and self.text == text


def tokenize(source: str) -> list[Token]:
    """The tokens of `source`, ending with an END token."""
    if len(source) > MAX_LENGTH:
        raise TagExpressionError(
            MAX_LENGTH + 1, f"the expression is longer than {MAX_LENGTH} characters"
        )
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        char = source[pos]
        column = pos + 1
        if char in " \t\r\n":
            pos += 1
        elif char in "\"'":
            token, pos = _string(source, pos)
            tokens.append(token)
        elif (number := _NUMBER.match(source, pos)) is not None:
            text = number.group()
            is_int = re.fullmatch(r"-?[0-9]+", text) is not None
            tokens.append(Token(Kind.NUMBER, text, column, int(text) if is_int else float(text)))
            pos = number.end()
        elif char.isdigit() or (char == "-" and source[pos + 1 : pos + 2].isdigit()):
            word = _WORDISH.match(source, pos)
            bad = word.group() if word else char
            raise TagExpressionError(
                column,
                f"{bad!r} is not a number (the unit is in the field's name: memory_gib >= 256)",
            )
        elif (name := _NAME.match(source, pos)) is not None:
            text = name.group()
            tokens.append(Token(Kind.KEYWORD if text in KEYWORDS else Kind.NAME, text, column))
            pos = name.end()
        elif (operator := _operator(source, pos)) is not None:
            tokens.append(Token(Kind.OPERATOR, operator, column))
            pos += len(operator)
        elif char in PUNCTUATION:
            tokens.append(Token(Kind.PUNCT, char, column))
            pos += 1
        else:
            hint = _HABITS.get(char)
            raise TagExpressionError(column, hint or f"unexpected character {char!r}")
    tokens.append(Token(Kind.END, "", len(source) + 1))
    return tokens


def _operator(source: str, pos: int) -> str | None:
    for operator in COMPARISONS:
        if source.startswith(operator, pos):
            return operator
    return None


def _string(source: str, start: int) -> tuple[Token, int]:
    """A string in single or double quotes. A backslash escapes the quote and itself; any
    other backslash stays as written, so a regular expression reads as it would in Python's
    raw strings ("\\d+" and "\\\\d+" both mean the pattern \\d+)."""
    quote = source[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(source):
        char = source[pos]
        if char == "\\" and pos + 1 < len(source) and source[pos + 1] in _ESCAPES:
            chars.append(_ESCAPES[source[pos + 1]])
            pos += 2
        elif char == quote:
            text = source[start : pos + 1]
            return Token(Kind.STRING, text, start + 1, "".join(chars)), pos + 1
        else:
            chars.append(char)
            pos += 1
    raise TagExpressionError(start + 1, f"the string that starts here has no closing {quote}")
