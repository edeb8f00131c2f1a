"""`edgebox events`: the listing, and --follow over the WebSocket with reconnects."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from fake_edgebox_api import TOKEN, FakeEdgebox, Invoke

from edgebox.cli import events as events_module
from edgebox.cli.client import JsonObject, ServerUnreachable
from edgebox.cli.events import EventFollower, retry_delay


def test_list_prints_events_oldest_first(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_event(machine="abc123", type="machine.created", message="enlisted by DHCP")
    fake.add_event(machine=None, type="site.started", level="warning", message="up again")

    result = run_cli("events")

    assert result.exit_code == 0, result.output
    lines = [line.split(None, 5) for line in result.stdout.splitlines()]
    assert lines == [
        ["SEQ", "TIME", "LEVEL", "MACHINE", "TYPE", "MESSAGE"],
        ["1", "2026-11-26T05:38:53Z", "info", "abc123", "machine.created", "enlisted by DHCP"],
        ["2", "2026-11-26T05:38:53Z", "warning", "-", "site.started", "up again"],
    ]
    assert fake.last("GET").query == [("after", "0")]


def test_list_passes_after_limit_and_machine(fake: FakeEdgebox, run_cli: Invoke) -> None:
    for _ in range(4):
        fake.add_event(machine="abc123")

    result = run_cli("events", "--after", "1", "--limit", "2", "--machine", "abc123", "--json")

    assert result.exit_code == 0, result.output
    assert [e["seq"] for e in json.loads(result.stdout)] == [2, 3]
    assert fake.last("GET").query == [("after", "1"), ("limit", "2"), ("machine", "abc123")]
    assert result.stderr == ""


def test_list_says_where_to_continue_when_a_page_is_full(
    fake: FakeEdgebox, run_cli: Invoke
) -> None:
    for _ in range(3):
        fake.add_event()

    result = run_cli("events", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert result.stderr == "More events: edgebox events --after 2\n"


def test_follow_streams_the_backlog_after_the_given_seq(fake: FakeEdgebox, run_cli: Invoke) -> None:
    for n in range(5):
        fake.add_event(machine="abc123", message=f"step {n + 1}")

    result = run_cli("events", "--follow", "--after", "1", "--max-events", "3")

    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["2", "3", "4"]
    assert result.stdout.splitlines()[0].endswith("step 2")
    assert fake.stream_afters == [1]
    stream = fake.last("GET", "/api/v1/events/stream")
    assert stream.auth == f"Bearer {TOKEN}"
    assert stream.query == [("after", "1")]


def test_follow_without_after_shows_only_new_events(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.add_event(message="old")
    fake.add_event(message="old")

    def publish_once_connected() -> None:
        assert fake.stream_connected.wait(timeout=10)
        fake.publish(machine="abc123", type="machine.status", message="new one")

    publisher = threading.Thread(target=publish_once_connected)
    publisher.start()
    result = run_cli("events", "--follow", "--json", "--max-events", "1")
    publisher.join()

    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert json.loads(line)["seq"] == 3
    assert json.loads(line)["message"] == "new one"
    assert fake.stream_afters == [2]


def test_follow_reconnects_with_the_last_seq_seen(fake: FakeEdgebox, run_cli: Invoke) -> None:
    for _ in range(5):
        fake.add_event()
    fake.close_streams_after = [2, 0]  # first stream: two events; second: none at all

    result = run_cli("events", "-f", "--after", "0", "--max-events", "5")

    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["1", "2", "3", "4", "5"]
    assert fake.stream_afters == [0, 2, 2]
    assert result.stderr.splitlines() == [
        "event stream lost (the server closed the stream); reconnecting after seq 2 in 0.01s",
        "event stream lost (the server closed the stream); reconnecting after seq 2 in 0.02s",
    ]


def test_follow_filters_by_machine(fake: FakeEdgebox, run_cli: Invoke) -> None:
    for machine in ("a", "b", "a", "b", "a"):
        fake.add_event(machine=machine)

    result = run_cli("events", "-f", "--after", "0", "--machine", "b", "--max-events", "2")

    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["2", "4"]


def test_follow_with_a_bad_token_fails_at_once(fake: FakeEdgebox, run_cli: Invoke) -> None:
    result = run_cli("events", "--follow", EDGEBOX_TOKEN="ebx_wrong")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: missing or invalid API token (check the token")


def test_follow_stops_when_the_stream_is_refused(fake: FakeEdgebox, run_cli: Invoke) -> None:
    fake.overrides[("GET", "/api/v1/events/stream")] = (403, {"error": "forbidden", "message": ""})

    result = run_cli("events", "--follow")

    assert result.exit_code == 1
    assert result.stderr == "error: this token may not read events (HTTP 403)\n"


def test_ctrl_c_ends_follow_with_exit_0_and_no_traceback(
    fake: FakeEdgebox, isolated_config: Path
) -> None:
    env = {
        **os.environ,
        "EDGEBOX_URL": fake.url,
        "EDGEBOX_TOKEN": TOKEN,
        "XDG_CONFIG_HOME": str(isolated_config.parent.parent),
    }
    # Like a terminal's Ctrl-C. When the tests run as a background job the shell has set
    # SIGINT to "ignore", which a child inherits through exec (a handled signal is reset).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(
        [sys.executable, "-m", "edgebox.cli.main", "events", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stream_connected.wait(timeout=20)
        fake.publish(message="hello")
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "no event line within 20 s"
        assert process.stdout.readline().rstrip().endswith("hello")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0
    assert stderr == ""


def test_retry_delay_doubles_up_to_a_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "FIRST_RETRY_DELAY_S", 0.5)
    assert [retry_delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


class FlakyClient:
    """Streams per connection: a list of events, or an exception raised before any."""

    def __init__(self, connections: list[list[JsonObject] | Exception]) -> None:
        self.connections = connections
        self.afters: list[int] = []

    async def stream_events(self, after: int) -> AsyncGenerator[JsonObject, None]:
        self.afters.append(after)
        outcome = self.connections.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        for event in outcome:
            yield event


async def test_follower_skips_repeats_and_resets_the_backoff_after_an_event() -> None:
    down = ServerUnreachable("http://box:5240", "connection refused")
    client = FlakyClient(
        [
            [{"seq": 1}, {"seq": 2}],
            down,
            down,
            [{"seq": 2}],  # only a repeat: not progress, so the backoff keeps growing
            [{"seq": 2}, {"seq": 3}],
            down,
            [{"seq": 4}],
        ]
    )
    emitted: list[Any] = []
    notices: list[str] = []
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    follower = EventFollower(
        client,
        last_seq=0,
        emit=emitted.append,
        notify=notices.append,
        max_events=4,
        sleep=sleep,
    )
    await follower.run()

    assert emitted == [{"seq": 1}, {"seq": 2}, {"seq": 3}, {"seq": 4}]
    assert client.afters == [0, 2, 2, 2, 2, 3, 3]
    assert delays == [0.01, 0.02, 0.04, 0.08, 0.01, 0.02]
    assert notices[1] == (
        "event stream lost (connection refused); reconnecting after seq 2 in 0.02s"
    )
