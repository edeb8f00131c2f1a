"""`edgebox events`: read the event log, or follow it live with `--follow`.

Following reads the WebSocket `/events/stream?after=SEQ`, which sends the backlog after SEQ and
then live events, in seq order. The daemon restarts and networks drop, so when the stream ends
or breaks the follower waits (0.5 s, doubling to at most 10 s) and reconnects with the last seq
it printed; nothing is lost or shown twice. Only a refusal (a bad token, say) ends it, and
Ctrl-C, which is how a user stops following and so exits 0.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import click

from edgebox.cli import render
from edgebox.cli.client import ApiClient, JsonObject, ServerUnreachable
from edgebox.cli.context import CliContext, call_api, json_option, pass_cli

EVENT_COLUMNS = ("SEQ", "TIME", "LEVEL", "MACHINE", "TYPE", "MESSAGE")
FIRST_RETRY_DELAY_S: Final = 0.5
MAX_RETRY_DELAY_S: Final = 10.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after `failures` (1, 2, ...) broken connections in a row."""
    return float(min(MAX_RETRY_DELAY_S, FIRST_RETRY_DELAY_S * 2 ** (failures - 1)))


def event_row(event: Mapping[str, Any]) -> list[str]:
    return [
        render.field(event, "seq"),
        render.timestamp(event.get("time")),
        render.field(event, "level"),
        render.field(event, "machine"),
        render.field(event, "type"),
        render.text(event.get("message")),
    ]


def event_line(event: Mapping[str, Any]) -> str:
    """One event as one line with fixed columns, for a stream that cannot be laid out ahead."""
    seq, time, level, machine, kind, message = event_row(event)
    return f"{seq:>6}  {time}  {level:<7}  {machine:<8}  {kind:<24}  {message}"


class EventSource(Protocol):
    """Where followed events come from: `ApiClient`, or a fake in tests."""

    def stream_events(self, after: int) -> AsyncGenerator[JsonObject, None]: ...


@dataclass
class EventFollower:
    """Streams events after `last_seq` to `emit` until `max_events` have gone, reconnecting."""

    client: EventSource
    last_seq: int
    emit: Callable[[JsonObject], None]
    notify: Callable[[str], None]
    machine: str | None = None
    max_events: int | None = None
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    emitted: int = 0

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with aclosing(self.client.stream_events(self.last_seq)) as stream:
                    async for event in stream:
                        if self._take(event):
                            failures = 0
                            if self._done():
                                return
                reason = "the server closed the stream"
            except ServerUnreachable as exc:
                reason = exc.reason
            failures += 1
            delay = retry_delay(failures)
            self.notify(
                f"event stream lost ({reason}); reconnecting after seq {self.last_seq} "
                f"in {delay:g}s"
            )
            await self.sleep(delay)

    def _take(self, event: JsonObject) -> bool:
        """Note the event's seq and emit it if it is for our machine; False for a repeat."""
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return False
            self.last_seq = seq
        if self.machine is None or event.get("machine") == self.machine:
            self.emit(event)
            self.emitted += 1
        return True

    def _done(self) -> bool:
        return self.max_events is not None and self.emitted >= self.max_events


def _print_event_list(cli: CliContext, page: Mapping[str, Any], limit: int) -> None:
    items = page.get("items", [])
    if cli.json_output:
        render.print_json(items)
        return
    if not items:
        click.echo("No events.", err=True)
        return
    render.print_table(EVENT_COLUMNS, (event_row(event) for event in items))
    last_shown = items[-1].get("seq")
    if len(items) >= limit and isinstance(last_shown, int):
        click.echo(f"More events: edgebox events --after {last_shown}", err=True)


def _follow(
    cli: CliContext, after: int | None, machine: str | None, max_events: int | None
) -> None:
    emit = render.print_json_line if cli.json_output else lambda e: click.echo(event_line(e))

    def notify(message: str) -> None:
        click.echo(message, err=True)

    async def follow(client: ApiClient) -> None:
        # One plain request first: a wrong URL or token fails now, with its own exit code,
        # instead of being retried for ever; and without --after it says where "now" is.
        page = await client.get("/events", [("after", str(after or 0)), ("limit", "1")])
        start = after if after is not None else int(page.get("last_seq") or 0)
        if sys.stderr.isatty():
            notify(f"Following events after seq {start}; Ctrl-C to stop.")
        follower = EventFollower(
            client, start, emit, notify, machine=machine, max_events=max_events
        )
        await follower.run()

    try:
        call_api(cli, follow)
    except KeyboardInterrupt:
        # Ctrl-C is how a user stops following: not an error, and no traceback.
        return


@click.command("events")
@click.option("--after", type=click.IntRange(min=0), metavar="SEQ", help="Events after this seq.")
@click.option("--machine", metavar="SYSTEM_ID", help="Only this machine's events.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), metavar="N", help="How many (server default 100)."
)
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new events until Ctrl-C.")
@click.option("--max-events", type=click.IntRange(min=1), hidden=True)
@json_option
@pass_cli
def events(
    cli: CliContext,
    *,
    after: int | None,
    machine: str | None,
    limit: int | None,
    follow: bool,
    max_events: int | None,
) -> None:
    """Show the event log, or follow it live.

    Events are listed oldest first from --after (default: the beginning). With --follow and no
    --after, only new events are shown, and --json prints one JSON object per line; --limit
    applies to the listing only.
    """
    if follow:
        _follow(cli, after, machine, max_events)
        return
    query = [("after", str(after or 0))]
    if limit is not None:
        query.append(("limit", str(limit)))
    if machine is not None:
        query.append(("machine", machine))
    page = call_api(cli, lambda client: client.get("/events", query))
    _print_event_list(cli, page, limit or 100)
