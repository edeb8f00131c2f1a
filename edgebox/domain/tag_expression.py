"""Tag definitions: a small, safe expression language over a machine's hardware inventory.

    gpu.vendor == "nvidia" and memory_gib >= 256
    any(disk.type == "nvme" and disk.size_gb >= 900) and not bmc.present
    count(gpu) >= 4 or "avx512f" in cpu.flags
    system.product matches "^PowerEdge R[67]"

A definition is parsed by a tokenizer and a recursive-descent parser into an immutable tree,
then evaluated by walking it; no Python is ever compiled or run (no eval, no ast module). The
parser refuses anything outside the grammar, and checks every name against the vocabulary and
every comparison against the names' types, so a definition that is stored is one that can be
evaluated on any inventory without an error.

Grammar (lowest precedence first)::

    expression  := and_expr ("or" and_expr)*
    and_expr    := not_expr ("and" not_expr)*
    not_expr    := "not" not_expr | comparison
    comparison  := operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                           | ["not"] "in" operand
                           | "matches" string ]
    operand     := number | string | "true" | "false" | "null" | list
                 | name ("." name)* | ("any" | "all" | "count") "(" expression ")"
                 | "(" expression ")"
    list        := "[" [literal ("," literal)*] "]"

Numbers are integers or decimals (`256`, `1.5`, `-1`); strings take double or single quotes,
and a backslash escapes only a quote or a backslash. The names are listed in
`tag_vocabulary.py`: fields (`memory_gib`, `cpu.cores`, `firmware.secure_boot`, ...) and the
collections `disk`, `nic`, `gpu`, `pci`, `dimm`, whose elements' fields are written through
them (`disk.type`).

The rules:

- Types. `==` and `!=` compare values of one kind; `<` `<=` `>` `>=` compare two numbers or
  two strings (strings by character codes). `a in b` is a substring test when b is a string
  (`"EPYC" in cpu.model`, case-sensitive) and a membership test when b is a list of strings
  (`"avx512f" in cpu.flags`) or a list literal (`gpu.vendor in ["nvidia", "amd"]`).
  `s matches "re"` searches s with a regular expression limited as `tag_regex.py` says.
  Only conditions join with and/or/not; a boolean field (`bmc.present`) is a condition.
- Unknown values. A field the inventory does not know is null. Every comparison with null is
  false, `!=` and `not in` included; only `x == null` (and `x != null`) test for it. So
  `not gpu.vendor == "x"` and `gpu.vendor != "x"` differ when the vendor is unknown.
- Collections. `any(cond)`, `all(cond)` and `count(cond)` run `cond` once per element of the
  one collection it names, with that element bound: in `any(disk.type == "nvme" and
  disk.size_gb > 900)` both tests speak of the same disk. `count(disk)` is the number of
  disks, `any(gpu)` whether there is one; `all` of an empty collection is true. A condition
  inside a function speaks of exactly one collection (and machine fields), and functions do
  not nest: join them with and/or, which says the same thing, and keeps every evaluation
  linear in the size of the inventory.
- Collections outside a function. A comparison (or boolean field) that names a collection's
  field outside any/all/count is true when it holds for at least one element:
  `gpu.vendor == "nvidia"` is `any(gpu.vendor == "nvidia")`. The comparison is the unit, so
  `disk.type == "nvme" and disk.rotational` may be satisfied by two different disks, and
  `not gpu.vendor == "nvidia"` means that no GPU is an NVIDIA one.
- A machine that has never reported an inventory has no tag whose definition it satisfies:
  every definition is false for it, `not ...` included.
- Limits: MAX_LENGTH characters, nesting (parentheses, `not`, lists, functions) MAX_DEPTH
  levels deep.

Every refusal is a `TagExpressionError` naming the column and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from edgebox.domain.tag_ast import (
    And,
    Compare,
    Const,
    Contains,
    Field,
    IsNull,
    ListConst,
    Matches,
    Node,
    Not,
    Or,
    Quantified,
    Quantifier,
    children,
    evaluate,
)
from edgebox.domain.tag_lexer import MAX_LENGTH, Kind, TagExpressionError, Token, tokenize
from edgebox.domain.tag_names import resolve_name
from edgebox.domain.tag_regex import UnsafePattern, safe_pattern
from edgebox.domain.tag_types import Type, Typed, described, free_collections, type_of
from edgebox.domain.tag_vocabulary import TagContext, tag_context

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "TagContext",
    "TagExpression",
    "TagExpressionError",
    "parse_tag_expression",
    "tag_context",
]

MAX_DEPTH = 32
FUNCTIONS = {q.value: q for q in Quantifier}
_ORDERING = ("<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class TagExpression:
    source: str
    root: Node
    names: frozenset[str]  # the fields and collections it uses: "memory_gib", "disk.type", "disk"

    def evaluate(self, context: TagContext) -> bool:
        """Whether the machine of `context` satisfies the definition. The context must hold
        every name in `names` (`tag_context(inventory)` holds them all)."""
        if not context.reported:
            return False
        return evaluate(self.root, context)

    def matches_inventory(self, inventory: Mapping[str, Any] | None) -> bool:
        """`evaluate` over a context built with this expression's names only."""
        return self.evaluate(tag_context(inventory, self.names))


def parse_tag_expression(source: str) -> TagExpression:
    """Parse a definition; raise TagExpressionError for anything outside the language."""
    parser = _Parser(source, tokenize(source))
    if parser.at_end():
        parser.fail("expected a condition, found an empty expression")
    result = parser.expression()
    if not parser.at_end():
        parser.fail(f"expected 'and', 'or' or the end of the expression, found {parser.found()}")
    root = parser.condition(result, "a definition").tree
    return TagExpression(source, root, _names(root))


def _names(node: Node) -> frozenset[str]:
    if isinstance(node, Field):
        return frozenset(
            {node.name if node.collection is None else f"{node.collection}.{node.name}"}
        )
    own = frozenset({node.collection}) if isinstance(node, Quantified) else frozenset()
    return own.union(*(_names(child) for child in children(node)))


class _Parser:
    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.source = source
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.function: str | None = None  # inside the argument of this function

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def at_end(self) -> bool:
        return self.token.kind is Kind.END

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not Kind.END:
            self.pos += 1
        return token

    def found(self) -> str:
        return self.token.describe()

    def fail(self, problem: str, column: int | None = None) -> NoReturn:
        raise TagExpressionError(self.token.column if column is None else column, problem)

    def deeper(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"the expression nests more than {MAX_DEPTH} levels deep", token.column)

    def text_from(self, column: int) -> str:
        """The source of what was parsed from `column` to here, shortened for messages."""
        text = " ".join(self.source[column - 1 : self.token.column - 1].split())
        return text if len(text) <= 40 else text[:39] + "…"

    # -- conditions ---------------------------------------------------------------------

    def expression(self) -> Typed:
        return self.joined("or", Or, self.conjunction)

    def conjunction(self) -> Typed:
        return self.joined("and", And, self.negation)

    def joined(self, word: str, make: type[And] | type[Or], part: Any) -> Typed:
        first: Typed = part()
        if not self.token.is_(word):
            return first
        operands = [self.condition(first, f"'{word}'").tree]
        while self.token.is_(word):
            self.advance()
            if self.token.kind is Kind.END:
                self.fail(f"expected a condition after '{word}', found end of expression")
            operands.append(self.condition(part(), f"'{word}'").tree)
        return Typed(
            make(tuple(operands)), Type.BOOLEAN, first.column, self.text_from(first.column)
        )

    def negation(self) -> Typed:
        if not self.token.is_("not"):
            return self.comparison()
        word = self.advance()
        self.deeper(word)
        if self.token.kind is Kind.END:
            self.fail("expected a condition after 'not', found end of expression")
        operand = self.condition(self.negation(), "'not'")
        self.depth -= 1
        return Typed(Not(operand.tree), Type.BOOLEAN, word.column, self.text_from(word.column))

    def condition(self, typed: Typed, user: str) -> Typed:
        """`typed`, which `user` (e.g. "'and'") needs to be a condition."""
        if typed.type is Type.BOOLEAN:
            return typed
        what = f"{typed.text} is {described(typed)}"
        if typed.type is Type.COLLECTION:
            hint = f"use any({typed.text}), count({typed.text}) > 0 or one of its fields"
        elif typed.type in (Type.NUMBER, Type.STRING):
            hint = f"compare it, e.g. {typed.text} {'>=' if typed.type is Type.NUMBER else '=='} …"
        else:
            hint = "a condition is a comparison, a boolean field, any(...) or all(...)"
        self.fail(f"{user} needs a condition, but {what}; {hint}", typed.column)

    # -- comparisons --------------------------------------------------------------------

    def comparison(self) -> Typed:
        left = self.operand()
        token = self.token
        if token.kind is Kind.OPERATOR:
            self.advance()
            result = self.compare(left, token, self.operand(after=token))
        elif token.is_("in") or (token.is_("not") and self.tokens[self.pos + 1].is_("in")):
            negated = token.is_("not")
            self.advance()
            word = self.advance() if negated else token
            result = self.contains(left, word, self.operand(after=word), negated)
        elif token.is_("matches"):
            self.advance()
            result = self.matches(left, token, self.operand(after=token))
        else:
            return self.quantify(left)
        if self.token.kind is Kind.OPERATOR or self.token.is_("in") or self.token.is_("matches"):
            self.fail("comparisons cannot be chained (a < b < c); join them with 'and'")
        return self.quantify(result)

    def quantify(self, typed: Typed) -> Typed:
        """A condition on a collection's field outside any/all/count holds when it holds for
        some element: wrap it in an implicit any()."""
        free = free_collections(typed.node)
        if len(free) > 1:
            self.fail(
                f"one comparison may speak of one collection, but {typed.text} names "
                f"{' and '.join(sorted(free))}; test each in its own condition",
                typed.column,
            )
        if not free or self.function is not None or typed.type is not Type.BOOLEAN:
            return typed
        (collection,) = free
        node = Quantified(Quantifier.ANY, collection, typed.tree, implicit=True)
        return Typed(node, Type.BOOLEAN, typed.column, typed.text)

    def compare(self, left: Typed, op: Token, right: Typed) -> Typed:
        for side in (left, right):
            if side.type in (Type.COLLECTION, Type.STRINGS, Type.LIST):
                self.fail(
                    f"'{op.text}' cannot compare {side.text}: {_uncomparable(side)}", side.column
                )
        text = self.text_from(left.column)
        if Type.NULL in (left.type, right.type):
            if op.text not in ("==", "!="):
                self.fail(f"null can only be compared with == or !=, not '{op.text}'", op.column)
            known = right if left.type is Type.NULL else left
            if known.type is Type.NULL:
                self.fail("comparing null with null says nothing about the machine", op.column)
            return Typed(IsNull(known.tree, op.text == "!="), Type.BOOLEAN, left.column, text)
        if left.type is not right.type:
            self.fail(
                f"'{op.text}' compares values of one kind, but {left.text} is "
                f"{described(left)} and {right.text} is {described(right)}",
                op.column,
            )
        if op.text in _ORDERING and left.type is Type.BOOLEAN:
            self.fail(f"'{op.text}' orders numbers or strings, not true and false", op.column)
        node = Compare(op.text, left.tree, right.tree)
        return Typed(node, Type.BOOLEAN, left.column, text)

    def contains(self, needle: Typed, word: Token, haystack: Typed, negated: bool) -> Typed:
        if needle.type not in (Type.NUMBER, Type.STRING, Type.BOOLEAN):
            self.fail(
                f"'in' needs a value on its left, but {needle.text} is {described(needle)}",
                needle.column,
            )
        if haystack.type is Type.STRING or haystack.type is Type.STRINGS:
            fits = needle.type is Type.STRING
        elif haystack.type is Type.LIST:
            fits = haystack.element is None or haystack.element is needle.type
        else:
            self.fail(
                f"'in' needs a string, a list of strings or a [list] on its right, but "
                f"{haystack.text} is {described(haystack)}",
                haystack.column,
            )
        if not fits:
            self.fail(
                f"{needle.text} is {described(needle)}, which cannot be in {haystack.text} "
                f"({described(haystack)})",
                word.column,
            )
        node = Contains(needle.tree, haystack.tree, negated)
        return Typed(node, Type.BOOLEAN, needle.column, self.text_from(needle.column))

    def matches(self, subject: Typed, word: Token, pattern: Typed) -> Typed:
        if subject.type is not Type.STRING:
            self.fail(
                f"'matches' tests a string, but {subject.text} is {described(subject)}",
                subject.column,
            )
        if not isinstance(pattern.node, Const) or not isinstance(pattern.node.value, str):
            self.fail("'matches' needs a quoted pattern on its right", pattern.column)
        try:
            compiled = safe_pattern(pattern.node.value)
        except UnsafePattern as exc:
            self.fail(f"pattern refused: {exc}", pattern.column)
        node = Matches(subject.tree, compiled)
        return Typed(node, Type.BOOLEAN, subject.column, self.text_from(subject.column))

    # -- operands -----------------------------------------------------------------------

    def operand(self, after: Token | None = None) -> Typed:
        token = self.token
        if token.kind in (Kind.NUMBER, Kind.STRING) or token.text in ("true", "false"):
            self.advance()
            value = _literal(token)
            return Typed(Const(value), type_of(value), token.column, token.text)
        if token.is_("null"):
            self.advance()
            return Typed(None, Type.NULL, token.column, "null")
        if token.is_("("):
            self.advance()
            self.deeper(token)
            inner = self.expression()
            self.expect(")", f"to close the '(' at column {token.column}")
            self.depth -= 1
            return Typed(inner.node, inner.type, token.column, self.text_from(token.column))
        if token.is_("["):
            return self.list_literal()
        if token.kind is Kind.NAME and token.text in FUNCTIONS:
            return self.call()
        if token.kind is Kind.NAME:
            return self.name()
        where = f" after '{after.text}'" if after is not None else ""
        self.fail(f"expected a value{where}, found {self.found()}")

    def expect(self, text: str, why: str) -> Token:
        if not self.token.is_(text):
            self.fail(f"expected '{text}' {why}, found {self.found()}")
        return self.advance()

    def list_literal(self) -> Typed:
        opening = self.advance()
        self.deeper(opening)
        values: list[str | int | float | bool] = []
        kind: Type | None = None
        while not self.token.is_("]"):
            if values:
                self.expect(",", "between the values of the list")
            token = self.token
            if token.kind not in (Kind.NUMBER, Kind.STRING) and token.text not in ("true", "false"):
                self.fail(f"a list holds numbers, strings, true or false; found {self.found()}")
            self.advance()
            value = _literal(token)
            if kind is not None and type_of(value) is not kind:
                self.fail(
                    f"a list holds values of one kind, but {token.text} is not {kind.value}",
                    token.column,
                )
            kind = type_of(value)
            values.append(value)
        self.advance()
        self.depth -= 1
        text = self.text_from(opening.column)
        return Typed(ListConst(tuple(values)), Type.LIST, opening.column, text, element=kind)

    def call(self) -> Typed:
        word = self.advance()
        quantifier = FUNCTIONS[word.text]
        if not self.token.is_("("):
            self.fail(f"expected '(' after {word.text}, found {self.found()}")
        if self.function is not None:
            self.fail(
                f"{word.text}() cannot be used inside {self.function}(): the condition of a "
                "function speaks of one collection; join functions with 'and' or 'or'",
                word.column,
            )
        self.advance()
        self.deeper(word)
        if self.token.is_(")"):
            self.fail(
                f'expected a condition inside {word.text}(), e.g. {word.text}(disk.type == "nvme")'
            )
        self.function = word.text
        argument = self.expression()
        self.function = None
        self.expect(")", f"to close {word.text}(")
        self.depth -= 1
        text = self.text_from(word.column)
        result = Type.NUMBER if quantifier is Quantifier.COUNT else Type.BOOLEAN
        if argument.type is Type.COLLECTION:
            assert argument.collection is not None
            node = Quantified(quantifier, argument.collection, None)
            return Typed(node, result, word.column, text)
        condition = self.condition(argument, f"{word.text}()")
        free = free_collections(condition.node)
        if len(free) != 1:
            names = " and ".join(sorted(free)) if free else "none"
            self.fail(
                f"{word.text}() runs its condition over one collection (disk, nic, gpu, pci "
                f"or dimm), but {argument.text} names {names}",
                argument.column,
            )
        (collection,) = free
        return Typed(Quantified(quantifier, collection, condition.tree), result, word.column, text)

    def name(self) -> Typed:
        first = self.advance()
        parts = [first.text]
        while self.token.is_("."):
            self.advance()
            if self.token.kind is not Kind.NAME:
                self.fail(f"expected a field name after '.', found {self.found()}")
            parts.append(self.advance().text)
        dotted = ".".join(parts)
        if self.token.is_("("):
            self.fail(
                f"unknown function {dotted!r}; the functions are any(), all() and count()",
                first.column,
            )
        return resolve_name(dotted, first.column)


def _literal(token: Token) -> str | int | float | bool:
    if token.kind is Kind.KEYWORD:
        return token.text == "true"
    assert token.value is not None
    return token.value


def _uncomparable(typed: Typed) -> str:
    if typed.type is Type.COLLECTION:
        return f"it is a collection; compare one of its fields or count({typed.text})"
    if typed.type is Type.STRINGS:
        return f'it is a list of strings; test membership with "value" in {typed.text}'
    return "a list can only follow 'in'"
