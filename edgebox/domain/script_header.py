"""Finding a script's metadata header: the block of comments between two marker lines.

    #!/bin/sh
    # --- edgebox script ---
    # name: cpu-stress
    # --- end ---

The block may come after other comments (a licence, say) but every line inside it is a '#'
comment; the markers are recognised with any number of '#' and spaces around them. The YAML
inside keeps its indentation: one space after the '#' is dropped, no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edgebox.domain.script_metadata import MetadataError

HEADER_START: Final = "--- edgebox script ---"
HEADER_END: Final = "--- end ---"


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """The header's YAML, with its comment markers stripped; its line i (0-based) is line
    `first_line + i` of the script."""

    yaml_text: str
    first_line: int
    start_line: int  # the line of "# --- edgebox script ---"


def extract_header(text: str) -> HeaderBlock:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _marker(line) == HEADER_START), None)
    if start is None:
        raise MetadataError(
            1, "header", f"no '# {HEADER_START}' line: a script starts with its metadata header"
        )
    body: list[str] = []
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if _marker(line) == HEADER_END:
            return HeaderBlock("\n".join(body) + "\n", start + 2, start + 1)
        stripped = line.lstrip()
        if not stripped.startswith("#"):
            raise MetadataError(
                index + 1, "header", f"a line in the header must be a '#' comment, got {line!r}"
            )
        content = stripped[1:]
        body.append(content[1:] if content.startswith(" ") else content)
    raise MetadataError(start + 1, "header", f"the header has no closing '# {HEADER_END}' line")


def _marker(line: str) -> str | None:
    stripped = line.strip()
    if not stripped.startswith("#"):
        return None
    return stripped.lstrip("#").strip()
