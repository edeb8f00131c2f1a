"""A stand-in for edgebox's machine API, for testing the ephemeral agent against.

Serves the three calls the agent makes and appends every request it gets to a JSON-lines file
(path, Authorization header, Content-Type, the body parsed as JSON, and what it answered):

    POST /machine/v1/enlist     -> 200 {"system_id": SYSTEM_ID, "status": "new"}
    POST /machine/v1/heartbeat  -> 200 {"action": the next of --actions, the last one repeating}
    POST /machine/v1/status     -> 200 {}

A request without `Authorization: Bearer TOKEN` gets 401, an unknown path 404, a body that is
not JSON 400, all recorded too. Standard library only: the test runs it as a script inside a
lab namespace (`python3 ephemeral_api.py --host 10.231.0.1 --port 5248 ...`), or on 127.0.0.1
with `--port 0`, and waits for the line "listening PORT" on its stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SYSTEM_ID = "abc123"
ENLIST = "/machine/v1/enlist"
HEARTBEAT = "/machine/v1/heartbeat"
STATUS = "/machine/v1/status"


class MachineApi:
    """What the stand-in answers, and the record of what it was asked."""

    def __init__(self, token: str, actions: list[str], record: Path) -> None:
        self.token = token
        self.actions = actions
        self.record = record
        self.heartbeats = 0
        self.lock = threading.Lock()

    def answer(self, path: str, auth: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        if auth != f"Bearer {self.token}":
            return 401, {"error": "bad or missing bearer token"}
        if body is None:
            return 400, {"error": "body is not JSON"}
        if path == ENLIST:
            return 200, {"system_id": SYSTEM_ID, "status": "new"}
        if path == HEARTBEAT:
            action = self.actions[min(self.heartbeats, len(self.actions) - 1)]
            self.heartbeats += 1
            return 200, {"action": action}
        if path == STATUS:
            return 200, {}
        return 404, {"error": f"no such call: {path}"}

    def handle(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.lock:
            code, reply = self.answer(request.path, request.headers.get("Authorization"), body)
            line = {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
                "user_agent": request.headers.get("User-Agent"),
                "body": body,
                "raw": None if body is not None else raw.decode(errors="replace"),
                "code": code,
                "reply": reply,
            }
            with self.record.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        return code, reply


def handler_for(api: MachineApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            code, reply = api.handle(self)
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)

    return Handler


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=5248)
    parser.add_argument("--token", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--actions", default="poweroff", help="heartbeat answers, comma-separated")
    args = parser.parse_args(argv)
    api = MachineApi(args.token, args.actions.split(","), args.record)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(api))
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
