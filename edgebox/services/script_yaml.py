"""The YAML of scripts: the metadata header (with the script's line numbers) and result files.

The domain validates plain data (`edgebox.domain.script_metadata`); this module is where the
YAML library is. `yaml.compose` gives the node tree with each node's position in the YAML text;
the header's YAML line i is line `first_line + i` of the script, so every field's error can
name the line a person sees in their editor.
"""

from __future__ import annotations

from typing import Any

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


def read_metadata(text: str) -> ScriptMetadata:
    """The validated metadata of a script, or `MetadataError` naming the line and field."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise MetadataError(1, "content", f"a script may be at most {MAX_SCRIPT_BYTES} bytes")
    if "\0" in text:
        raise MetadataError(1, "content", "a script is text; it holds a NUL byte")
    header = extract_header(text)
    try:
        node = yaml.compose(header.yaml_text, Loader=SafeLoader)
        data = yaml.load(header.yaml_text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = header.first_line + mark.line if mark is not None else header.start_line
        problem = getattr(exc, "problem", None) or str(exc)
        raise MetadataError(line, "header", f"not valid YAML: {problem}") from None
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
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFileError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        data: Any = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ResultFileError(f"not valid YAML{where}: {problem}") from None
    return parse_result_file(data)
