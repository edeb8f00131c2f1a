"""One event, one line: what a peer sent cannot forge a log line or reach a terminal raw."""

from __future__ import annotations

import json
import logging
import sys

from edgebox.bootstrap.logs import JsonFormatter, TextFormatter, escape_controls


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("bad\x1b[31m value\nsecond line")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("edgebox.test", logging.WARNING, __file__, 1, message, args, info)


AGENT_TEXT = "disk died\n2026-01-01T00:00:00.000Z info    edgebox: all fine\x1b[2J\r\u2028\x85"


def test_text_lines_escape_what_an_agent_sent() -> None:
    line = TextFormatter().format(record("deploy failed system_id=%s: %s", "abc", AGENT_TEXT))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.endswith(
        "edgebox.test: deploy failed system_id=abc: disk died\\x0a2026-01-01T00:00:00.000Z "
        "info    edgebox: all fine\\x1b[2J\\x0d\\u2028\\x85"
    )


def test_tracebacks_keep_their_lines_but_no_other_control() -> None:
    text = TextFormatter().format(record("internal error ref=%s", "ab12", exc=True))
    first, *rest = text.split("\n")
    assert first.endswith("internal error ref=ab12")
    assert rest[0] == "Traceback (most recent call last):"
    assert "\x1b" not in text and "bad\\x1b[31m value" in text


def test_json_lines_escape_by_design() -> None:
    line = JsonFormatter().format(record("%s", AGENT_TEXT))
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert json.loads(line)["message"] == AGENT_TEXT


def test_printable_text_is_left_alone() -> None:
    assert escape_controls("mac=52:54:00:00:00:0a name=ü ok") == "mac=52:54:00:00:00:0a name=ü ok"
    assert escape_controls("a\tb") == "a\\x09b"
