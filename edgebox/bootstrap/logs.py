"""Structured log lines: `time level logger message key=value ...`, or one JSON object a line.

A message often carries what a peer sent (an agent's error text, a DHCP host name, a TFTP file
name, a request path), so the text format escapes every control character in it (`\n` is
written `\x0a`): one event is one line, and nobody on the network can forge a log line or
send terminal escape sequences to whoever reads the log. Tracebacks keep their own newlines;
other control characters in them are escaped too. The JSON format escapes them by design.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

from edgebox.domain.settings import LogSettings

# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _CONTROLS}
_ESCAPES_BUT_NEWLINE = {c: e for c, e in _ESCAPES.items() if c != 0x0A}


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape: one line, printable."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = escape_controls(record.getMessage())
        line = f"{_time(record)} {record.levelname.lower():7} {record.name}: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info).translate(_ESCAPES_BUT_NEWLINE)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _time(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def setup_logging(settings: LogSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # aiohttp's access log is one line per request: useful when debugging, noise otherwise.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if settings.level == "debug" else logging.WARNING
    )
