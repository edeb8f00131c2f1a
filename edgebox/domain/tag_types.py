"""What the tag parser knows about each piece it has parsed: its node, type and source text.

The parser checks types before anything is stored, so that evaluation never meets a
comparison it cannot make; these are the types it reasons with, one more than a field can
have (null, a list literal, a bare collection name).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgebox.domain.tag_ast import Field, Node, Quantified, children


class Type(enum.Enum):
    NUMBER = "a number"
    STRING = "a string"
    BOOLEAN = "a condition (true or false)"
    STRINGS = "a list of strings"
    NULL = "null"
    LIST = "a list"
    COLLECTION = "a collection"


@dataclass(frozen=True, slots=True)
class Typed:
    node: Node | None  # None for `null` and for a bare collection name
    type: Type
    column: int
    text: str  # the source, to quote in messages
    element: Type | None = None  # a list literal's element type (None: an empty list)
    collection: str | None = None  # a bare collection name's collection

    @property
    def tree(self) -> Node:
        """The node, for a piece that the parser has checked is a value or a condition."""
        assert self.node is not None, f"{self.text} has no node"
        return self.node


def described(typed: Typed) -> str:
    return str(typed.type.value)


def type_of(value: str | int | float | bool) -> Type:
    if isinstance(value, bool):
        return Type.BOOLEAN
    if isinstance(value, str):
        return Type.STRING
    return Type.NUMBER


def free_collections(node: Node | None) -> frozenset[str]:
    """The collections whose fields `node` uses without a quantifier that binds them."""
    if isinstance(node, Field):
        return frozenset() if node.collection is None else frozenset({node.collection})
    if node is None:
        return frozenset()
    free = frozenset().union(*(free_collections(child) for child in children(node)))
    return free - {node.collection} if isinstance(node, Quantified) else free
