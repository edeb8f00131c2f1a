"""A stand-in for edgebox's machine API, for testing the ephemeral agent against.

Serves the calls the agent makes and appends every request it gets to a JSON-lines file
(path, Authorization header, Content-Type, the body parsed as JSON, when it came, and what it
answered):

    POST /machine/v1/enlist     -> 200 {"system_id": SYSTEM_ID, "status": "new"}
    POST /machine/v1/heartbeat  -> 200 {"action": ...}: for {"state": "running"} the
                                   --running-action (default continue); otherwise the next of
                                   --actions, the last one repeating
    POST /machine/v1/status     -> 200 {}

and, with --plan FILE, the script calls of docs/commissioning-contract.md §1. FILE is JSON:
`[{"id", "parallel", "timeout", "name", "script": PATH, "env": {NAME: VALUE}}, ...]`.

    POST /machine/v1/plan                    -> text/plain, one tab-separated line per result
    POST /machine/v1/results/ID/script       -> the script file's bytes
    POST /machine/v1/results/ID/env          -> text/plain "export NAME='VALUE'" lines
    POST /machine/v1/results/ID/start|done   -> 200 {"ok": true} (done's JSON body recorded)
    POST /machine/v1/results/ID/stdout|stderr|result -> 200 {"ok": true}; the raw body saved
                                               as UPLOADS/ID.stdout (.stderr, .result)
    POST /machine/v1/throughput?bytes=N      -> N zero bytes

and, for docs/deploy-contract.md §2-3 (each only when its option is given):

    POST /machine/v1/deploy/plan    -> text/plain: the --deploy-plan file as it is (bad lines too)
    POST /machine/v1/erase/plan     -> text/plain: the --erase-plan file
    POST /machine/v1/deploy|erase/progress -> 200 {"ok": true} (body recorded)
    POST /machine/v1/deploy|erase/log      -> 200 {"ok": true}; saved as UPLOADS/deploy.log
                                              (erase.log)
    POST /machine/v1/deploy/done    -> 200 {"action": --done-action (default poweroff)}
    POST /machine/v1/erase/done     -> 200 {"action": "poweroff"}
    GET  /images/<hex>              -> the --image file (no token), with --image-corrupt one
                                       byte flipped, with --image-stall-after N only N bytes
                                       and then nothing until the client gives up
    GET  /cloud-init/<id>/user-data -> the --user-data file (no token)

A request without `Authorization: Bearer TOKEN` gets 401, an unknown path or result 404, a
body that is not JSON (where JSON is expected) 400, all recorded too. Standard library only:
the test runs it as a script inside a lab namespace (`python3 ephemeral_api.py --host
10.231.0.1 --port 5248 ...`), or on 127.0.0.1 with `--port 0`, and waits for the line
"listening PORT" on its stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SYSTEM_ID = "abc123"
ENLIST = "/machine/v1/enlist"
HEARTBEAT = "/machine/v1/heartbeat"
STATUS = "/machine/v1/status"
PLAN = "/machine/v1/plan"
THROUGHPUT = "/machine/v1/throughput"
RESULT_CALL = re.compile(
    r"/machine/v1/results/([^/]+)/(script|env|start|done|stdout|stderr|result)"
)
UPLOADS = ("stdout", "stderr", "result")
PLANS = {"/machine/v1/deploy/plan": "deploy_plan", "/machine/v1/erase/plan": "erase_plan"}
OP_CALL = re.compile(r"/machine/v1/(deploy|erase)/(progress|log|done)")


def sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


class Reply:
    """An answer that is not JSON: bytes with their content type."""

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data = data
        self.content_type = content_type


@dataclass(frozen=True)
class Deploy:
    """What the stand-in serves for deploy and erase (docs/deploy-contract.md)."""

    deploy_plan: Path | None = None
    erase_plan: Path | None = None
    image: Path | None = None
    image_corrupt: bool = False
    image_stall_after: int | None = None
    done_action: str = "poweroff"
    user_data: Path | None = None


class MachineApi:
    """What the stand-in answers, and the record of what it was asked."""

    def __init__(
        self,
        token: str,
        actions: list[str],
        record: Path,
        plan: list[dict[str, Any]] | None = None,
        uploads: Path | None = None,
        running_action: str = "continue",
        deploy: Deploy | None = None,
    ) -> None:
        self.deploy = deploy or Deploy()
        self.token = token
        self.actions = actions
        self.record = record
        self.plan = {str(r["id"]): r for r in plan or []}
        self.uploads = uploads
        self.running_action = running_action
        self.heartbeats = 0
        self.lock = threading.Lock()

    def answer(self, path: str, auth: str | None, raw: bytes) -> tuple[int, Any]:
        if auth != f"Bearer {self.token}":
            return 401, {"error": "bad or missing bearer token"}
        url = urlsplit(path)
        call = RESULT_CALL.fullmatch(url.path)
        if call and call.group(2) in UPLOADS:
            return self.upload(call.group(1), call.group(2), raw)
        op = OP_CALL.fullmatch(url.path)
        if op and op.group(2) == "log":
            if self.uploads is not None:
                (self.uploads / f"{op.group(1)}.log").write_bytes(raw)
            return 200, {"ok": True}
        if parse_json(raw) is None:
            return 400, {"error": "body is not JSON"}
        if call:
            return self.result_call(call.group(1), call.group(2))
        if url.path in PLANS:
            plan = getattr(self.deploy, PLANS[url.path])
            if plan is None:
                return 404, {"error": "no plan given to the stand-in"}
            return 200, Reply(Path(plan).read_bytes(), "text/plain")
        if op and op.group(2) == "progress":
            return 200, {"ok": True}
        if op:
            action = self.deploy.done_action if op.group(1) == "deploy" else "poweroff"
            return 200, {"action": action}
        if url.path == THROUGHPUT:
            size = int(parse_qs(url.query).get("bytes", ["0"])[0])
            return 200, Reply(bytes(size), "application/octet-stream")
        if url.path == PLAN:
            lines = [
                f"{r['id']}\t{r['parallel']}\t{r['timeout']}\t{r['name']}\n"
                for r in self.plan.values()
            ]
            return 200, Reply("".join(lines).encode(), "text/plain")
        if url.path == ENLIST:
            return 200, {"system_id": SYSTEM_ID, "status": "new"}
        if url.path == HEARTBEAT:
            if parse_json(raw).get("state") == "running":
                return 200, {"action": self.running_action}
            action = self.actions[min(self.heartbeats, len(self.actions) - 1)]
            self.heartbeats += 1
            return 200, {"action": action}
        if url.path == STATUS:
            return 200, {}
        return 404, {"error": f"no such call: {path}"}

    def result_call(self, result_id: str, what: str) -> tuple[int, Any]:
        result = self.plan.get(result_id)
        if result is None:
            return 404, {"error": f"no result {result_id}"}
        if what == "script":
            return 200, Reply(Path(result["script"]).read_bytes(), "application/octet-stream")
        if what == "env":
            env = {**result.get("env", {}), "EDGEBOX_RESULT_ID": result_id}
            text = "".join(f"export {k}={sh_quote(str(v))}\n" for k, v in env.items())
            return 200, Reply(text.encode(), "text/plain")
        return 200, {"ok": True}

    def upload(self, result_id: str, what: str, raw: bytes) -> tuple[int, Any]:
        if result_id not in self.plan or self.uploads is None:
            return 404, {"error": f"no result {result_id}"}
        (self.uploads / f"{result_id}.{what}").write_bytes(raw)
        return 200, {"ok": True}

    def get(self, path: str) -> bytes | None:
        """What a GET of `path` answers (no token: images and seeds are public), or None."""
        if path.startswith("/images/") and self.deploy.image is not None:
            data = bytearray(self.deploy.image.read_bytes())
            if self.deploy.image_corrupt:
                data[len(data) // 2] ^= 0x01
            return bytes(data)
        if re.fullmatch(r"/cloud-init/[^/]+/user-data", path) and self.deploy.user_data:
            return self.deploy.user_data.read_bytes()
        return None

    def note(self, request: BaseHTTPRequestHandler, code: int, reply: str) -> None:
        """Record a GET as the POSTs are recorded."""
        line = {"path": request.path, "method": "GET", "at": time.time(), "code": code,
                "user_agent": request.headers.get("User-Agent"), "reply": reply}  # fmt: skip
        with self.lock, self.record.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def handle(self, request: BaseHTTPRequestHandler) -> tuple[int, Any]:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        body = parse_json(raw)
        with self.lock:
            code, reply = self.answer(request.path, request.headers.get("Authorization"), raw)
            line = {
                "path": request.path,
                "at": time.time(),
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
                "user_agent": request.headers.get("User-Agent"),
                "body": body,
                "raw": None if body is not None else raw.decode(errors="replace"),
                "code": code,
                "reply": reply if not isinstance(reply, Reply) else f"{len(reply.data)} bytes",
            }
            with self.record.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        return code, reply


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def handler_for(api: MachineApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = api.get(self.path)
            api.note(self, 200 if data is not None else 404, f"{len(data or b'')} bytes")
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            stall = api.deploy.image_stall_after if self.path.startswith("/images/") else None
            self.wfile.write(data[:stall])
            if stall is not None:
                self.wfile.flush()
                time.sleep(600)  # until the client gives up and the connection breaks

        def do_POST(self) -> None:
            code, reply = api.handle(self)
            if isinstance(reply, Reply):
                data, content_type = reply.data, reply.content_type
            else:
                data, content_type = json.dumps(reply).encode(), "application/json"
            self.send_response(code)
            self.send_header("Content-Type", content_type)
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
    parser.add_argument("--running-action", default="continue", help="answer while scripts run")
    parser.add_argument("--plan", type=Path, help="JSON list of the results to run")
    parser.add_argument("--uploads", type=Path, help="where uploaded outputs are saved")
    parser.add_argument("--deploy-plan", type=Path, help="text answered to deploy/plan")
    parser.add_argument("--erase-plan", type=Path, help="text answered to erase/plan")
    parser.add_argument("--image", type=Path, help="the file GET /images/<hex> answers")
    parser.add_argument("--image-corrupt", action="store_true", help="flip a byte of it")
    parser.add_argument("--image-stall-after", type=int, help="send only this many bytes")
    parser.add_argument("--done-action", default="poweroff", help="answer to deploy/done")
    parser.add_argument("--user-data", type=Path, help="GET /cloud-init/<id>/user-data")
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text()) if args.plan else None
    deploy = Deploy(
        args.deploy_plan, args.erase_plan, args.image, args.image_corrupt,
        args.image_stall_after, args.done_action, args.user_data,
    )  # fmt: skip
    api = MachineApi(
        args.token, args.actions.split(","), args.record, plan, args.uploads,
        args.running_action, deploy,
    )  # fmt: skip
    server = ThreadingHTTPServer((args.host, args.port), handler_for(api))
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
