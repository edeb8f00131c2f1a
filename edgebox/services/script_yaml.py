"""The YAML of scripts: the metadata header (with the script's line numbers) and result files.

The domain validates plain data (`edgebox.domain.script_metadata`); this module is where the
YAML library is. `yaml.compose` gives the node tree with each node's position in the YAML text;
the header's YAML line i is line `first_line + i` of the script, so every field's error can
name the line a person sees in their editor.

Both come from outside (a result file from a machine's agent, a header from an operator), so a
document is composed into its node graph and checked before any Python value is built from it:
at most `MAX_NODES` nodes once every alias is expanded (a "billion laughs" of nested aliases is
a few hundred bytes that would expand to gigabytes when copied or stored), no alias that
contains itself, at most `MAX_DEPTH` levels. The checks cost time in the number of distinct
nodes, not expanded ones. `read_result_file` is synchronous: callers run it on a thread.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from edgebox.domain.script_header import extract_header
from edgebox.domain.script_metadata import (
    MetadataError,
    ScriptMetadata,
    validate_metadata,
)
from edgebox.domain.script_results import ReportedResult, ResultFileError, parse_result_file

try:  # the C loader is several times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader  # type: ignore[assignment]

MAX_SCRIPT_BYTES = 1024 * 1024
MAX_RESULT_FILE_BYTES: Final = 1024 * 1024
MAX_NODES: Final = 50_000  # after alias expansion; a result file holds tens
MAX_DEPTH: Final = 64


class YamlRefused(ValueError):
    """A document past the limits, or with a value that cannot be built (a date with month
    13); the message says which."""


def read_metadata(text: str) -> ScriptMetadata:
    """The validated metadata of a script, or `MetadataError` naming the line and field."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise MetadataError(1, "content", f"a script may be at most {MAX_SCRIPT_BYTES} bytes")
    if "\0" in text:
        raise MetadataError(1, "content", "a script is text; it holds a NUL byte")
    header = extract_header(text)
    try:
        node, data = _load_checked(header.yaml_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = header.first_line + mark.line if mark is not None else header.start_line
        problem = getattr(exc, "problem", None) or str(exc)
        raise MetadataError(line, "header", f"not valid YAML: {problem}") from None
    except YamlRefused as exc:
        raise MetadataError(header.start_line, "header", str(exc)) from None
    lines: dict[str, int] = {}
    if node is not None:
        _field_lines(node, "", header.first_line, lines)
    return validate_metadata(data, lines, header.start_line)


def _field_lines(node: yaml.Node, prefix: str, first_line: int, lines: dict[str, int]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
        lines[path] = first_line + key_node.start_mark.line
        _field_lines(value_node, path, first_line, lines)


def read_result_file(raw: bytes) -> ReportedResult:
    """The script's result file (§3), or `ResultFileError` saying what is wrong with it."""
    if len(raw) > MAX_RESULT_FILE_BYTES:
        raise ResultFileError(f"larger than {MAX_RESULT_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFileError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        _, data = _load_checked(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ResultFileError(f"not valid YAML{where}: {problem}") from None
    except YamlRefused as exc:
        raise ResultFileError(str(exc)) from None
    return parse_result_file(data)


def _load_checked(text: str) -> tuple[yaml.Node | None, Any]:
    """The node graph of the one document in `text` and the value built from it, once the
    graph has passed `_check_nodes`."""
    loader = SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None, None
        _check_nodes(node)
        try:
            return node, loader.construct_document(node)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise YamlRefused(f"a value cannot be read: {exc}") from None
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node) -> None:
    """YamlRefused if the document, with every alias expanded, holds more than `MAX_NODES`
    nodes, nests deeper than `MAX_DEPTH`, or has an alias inside its own anchor.

    An alias is the same node object as its anchor, so the expanded size of a node is 1 plus
    the expanded sizes of its children, each computed once (memoised by identity). The walk
    is iterative: a deep document cannot exhaust the stack here."""
    sizes: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(c)] for c in children)
            if size > MAX_NODES:
                raise YamlRefused(f"more than {MAX_NODES} values once its aliases are expanded")
            sizes[key] = size
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if depth[key] > MAX_DEPTH:
                raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlRefused("an alias refers to a node that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
        if len(open_nodes) > MAX_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
