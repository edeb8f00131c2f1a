"""The parsed form of a tag definition (immutable nodes) and its evaluation over one machine.

The parser (`tag_expression.py`) has checked names and types and made every quantifier
explicit, so evaluation is small: a field is looked up, a comparison with a null operand is
false, and `any`/`all`/`count` run their condition once per element of one collection with that
element bound. Nothing here raises on odd data; the worst an inventory can do is make a
condition false.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgebox.domain.tag_regex import MAX_SUBJECT
from edgebox.domain.tag_vocabulary import Element, TagContext, Value


@dataclass(frozen=True, slots=True)
class Const:
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class ListConst:
    values: tuple[str | int | float | bool, ...]


@dataclass(frozen=True, slots=True)
class Field:
    """A field of the machine (`collection` None, `name` dotted: "cpu.cores"), or of the
    element of `collection` that the enclosing quantifier binds (`name` "type")."""

    name: str
    collection: str | None = None


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # one of == != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class IsNull:
    """`x == null` (or `x != null` when negated): whether the value is unknown."""

    operand: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Contains:
    """`needle in haystack`: substring of a string, or member of a list."""

    needle: Node
    haystack: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Matches:
    subject: Node
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


class Quantifier(enum.Enum):
    ANY = "any"
    ALL = "all"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Quantified:
    """any/all/count over `collection`. `condition` None counts every element (`count(disk)`).
    `implicit` marks the `any` the parser put around a comparison written outside a function
    (`gpu.vendor == "nvidia"`), so the tree can be printed as it was written."""

    quantifier: Quantifier
    collection: str
    condition: Node | None
    implicit: bool = False


Node = (
    Const | ListConst | Field | Compare | IsNull | Contains | Matches | Not | And | Or | Quantified
)


class _Scope:
    """The machine, and the element bound by the quantifier being evaluated (if any)."""

    __slots__ = ("collection", "context", "element")

    def __init__(self, context: TagContext) -> None:
        self.context = context
        self.collection: str | None = None
        self.element: Element = {}


def children(node: Node) -> tuple[Node, ...]:
    match node:
        case Compare(_, left, right) | Contains(left, right, _):
            return (left, right)
        case IsNull(operand) | Not(operand) | Matches(operand):
            return (operand,)
        case And(operands) | Or(operands):
            return operands
        case Quantified(_, _, condition) if condition is not None:
            return (condition,)
    return ()


def evaluate(node: Node, context: TagContext) -> bool:
    return _truth(node, _Scope(context))


def _truth(node: Node, scope: _Scope) -> bool:
    return _value(node, scope) is True


def _value(node: Node, scope: _Scope) -> Value:  # noqa: PLR0911 (one branch per node type)
    match node:
        case Const(value):
            return value
        case ListConst(values):
            return values  # type: ignore[return-value]  # a homogeneous literal list
        case Field(name, None):
            return scope.context.fields.get(name)
        case Field(name, collection):
            return scope.element.get(name) if collection == scope.collection else None
        case Compare(op, left, right):
            return _compare(op, _value(left, scope), _value(right, scope))
        case IsNull(operand, negated):
            return (_value(operand, scope) is None) != negated
        case Contains(needle, haystack, negated):
            return _contains(_value(needle, scope), _value(haystack, scope), negated)
        case Matches(subject, pattern):
            text = _value(subject, scope)
            return isinstance(text, str) and pattern.search(text[:MAX_SUBJECT]) is not None
        case Not(operand):
            return not _truth(operand, scope)
        case And(operands):
            return all(_truth(operand, scope) for operand in operands)
        case Or(operands):
            return any(_truth(operand, scope) for operand in operands)
        case Quantified():
            return _quantified(node, scope)
    raise AssertionError(f"not a node: {node!r}")


def _kind(value: Value) -> type | None:
    """Values compare only within a kind; bool is its own, not a number."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return float
    if isinstance(value, str):
        return str
    return None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: str, left: Value, right: Value) -> bool:
    kind = _kind(left)
    if kind is None or kind is not _kind(right):
        return False  # null, a list, or two kinds: the comparison is false, never an error
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    return kind is not bool and _ORDER[op](left, right)


def _contains(needle: Value, haystack: Value, negated: bool) -> bool:
    if _kind(needle) is None:
        return False
    if isinstance(haystack, str):
        found = isinstance(needle, str) and needle in haystack
    elif isinstance(haystack, tuple):
        found = any(_kind(item) is _kind(needle) and item == needle for item in haystack)
    else:
        return False  # an unknown haystack: neither in nor not in
    return found != negated


def _quantified(node: Quantified, scope: _Scope) -> int | bool:
    elements = scope.context.collections.get(node.collection, ())
    if node.condition is None:
        hits = len(elements)
    else:
        saved = scope.collection, scope.element
        scope.collection = node.collection
        hits = 0
        try:
            for element in elements:
                scope.element = element
                if _truth(node.condition, scope):
                    hits += 1
                elif node.quantifier is Quantifier.ALL:
                    return False
                if hits and node.quantifier is Quantifier.ANY:
                    return True
        finally:
            scope.collection, scope.element = saved
    if node.quantifier is Quantifier.COUNT:
        return hits
    if node.quantifier is Quantifier.ANY:
        return hits > 0
    return True
