"""Names in tag definitions: what a dotted name refers to, and what to say when it is unknown.

A misspelt name is the most common mistake in a definition, so the refusal suggests the
closest known name (`memroy_gib`: did you mean `memory_gib`?), says when a group of fields was
named instead of one of them (`cpu`), and when a keyword was capitalised (`True`, `AND`).
"""

from __future__ import annotations

import difflib

from edgebox.domain.tag_ast import Field
from edgebox.domain.tag_lexer import TagExpressionError
from edgebox.domain.tag_types import Type, Typed
from edgebox.domain.tag_vocabulary import COLLECTIONS, FIELDS, all_names


def resolve_name(name: str, column: int) -> Typed:
    """The field or collection a dotted name means; TagExpressionError if none."""
    head, _, rest = name.partition(".")
    if head in COLLECTIONS:
        if not rest:
            return Typed(None, Type.COLLECTION, column, name, collection=head)
        kind = COLLECTIONS[head].get(rest)
        if kind is not None:
            return Typed(Field(rest, head), Type[kind.name], column, name)
    elif name in FIELDS:
        return Typed(Field(name), Type[FIELDS[name].name], column, name)
    raise TagExpressionError(column, _unknown(name))


def _unknown(name: str) -> str:
    if name.lower() in ("true", "false", "null", "and", "or", "not", "in", "matches"):
        return f"unknown name {name!r}; keywords are lowercase: {name.lower()}"
    if name == "None":
        return "unknown name 'None'; an unknown value is null"
    group = sorted(f for f in FIELDS if f.startswith(name + "."))
    if group:
        return f"{name} is a group of fields, not a value; use one of {', '.join(group)}"
    close = difflib.get_close_matches(name, all_names(), n=1, cutoff=0.6)
    if close:
        return f"unknown name {name!r}; did you mean {close[0]!r}?"
    return (
        f"unknown name {name!r}; names are fields such as memory_gib, cpu.cores or "
        "firmware.type, and the collections disk, nic, gpu, pci and dimm"
    )
