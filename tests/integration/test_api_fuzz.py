"""The API under schemathesis: every operation of `/api/v1/openapi.json`, fuzzed with a token
of each role (viewer, operator, admin) against a real `edgebox serve`.

No answer may be a 5xx, every answer must be what the document says (status, content type,
headers, body schema), a request outside the document must be refused, a request inside it
must not be refused as malformed, a method the document does not list is a 405 with `Allow`,
and no route answers without its token. Schemathesis generates both valid and invalid
requests (positive and negative modes) in two phases: "coverage" (boundaries: empty strings,
max+1, missing fields, wrong types) and "fuzzing" (random, up to `MAX_EXAMPLES` per operation
and role).

Two rewrites keep the run on loopback and keep its own credentials: an image import never
goes to a host on the network (it gets a closed loopback port), and the run never revokes
the three tokens it uses. Run with `-s` to see how many requests were made and their statuses.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from edgebox import __version__
from edgebox.api.openapi import build_openapi
from edgebox.api.server import ROUTES
from tests.integration import daemon

pytestmark = pytest.mark.slow

ROLES = ("viewer", "operator", "admin")
# 40 examples per operation and role: about 15,000 requests, 2.5 minutes on two busy cores.
MAX_EXAMPLES = int(os.environ.get("EDGEBOX_FUZZ_EXAMPLES", "40"))
SEED = int(os.environ.get("EDGEBOX_FUZZ_SEED", "13"))
# Requests that schemathesis made from the document but that the server refuses with a 400 for
# a rule JSON Schema cannot state: a language (a tag expression, a script's header), a rule
# across fields (one MAC given twice in `mac` and `macs`; a host name with many machines;
# the fields an action takes depend on the action in the path), or a fact about the edgebox
# (a path that is a FIFO, a URL that urlsplit refuses). Keyed by operation: the fields the
# 400 may name ("*": any).
SEMANTIC_FIELDS: dict[str, frozenset[str]] = {
    "POST /api/v1/tags": frozenset({"definition"}),
    "PATCH /api/v1/tags/{name}": frozenset({"definition"}),
    "POST /api/v1/scripts": frozenset({"*"}),
    "POST /api/v1/machines": frozenset({"macs"}),
    "POST /api/v1/machines/{system_id}/actions/{action}": frozenset({"*"}),
    "POST /api/v1/images": frozenset({"path", "url", "upstream"}),
    "POST /api/v1/deploy": frozenset({"hostname", "user_data"}),
    "POST /api/v1/commissioning": frozenset({"parameters", "tests"}),
}
# A WebSocket endpoint: an HTTP client that does not upgrade gets a 426, as documented.
WEBSOCKETS = frozenset({"GET /api/v1/events/stream"})


@dataclass
class Target:
    api_url: str
    tokens: dict[str, str]
    token_ids: set[int]
    closed_port: int
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    hostile: int = 0  # of all requests, those of test_hostile_values_never_cost_a_5xx


def _post(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    work = tmp_path_factory.mktemp("fuzz")
    with daemon.running(daemon.write_config(work)) as running:
        admin = running.admin_token
        assert admin is not None
        tokens = {"admin": admin}
        ids = {1}
        for role in ("operator", "viewer"):
            made = _post(
                f"{running.api_url}/api/v1/tokens",
                admin,
                {"name": f"fuzz {role}", "user": f"fuzz-{role}", "role": role},
            )
            tokens[role] = made["token"]
            ids.add(made["id"])
        found = Target(running.api_url, tokens, ids, daemon.free_port())
        yield found
        _report(found, work)
        assert running.proc.poll() is None, "edgebox died under the fuzzer"
        # Also the requests the checks make themselves (without a token, other methods).
        assert "internal error ref=" not in running.stderr, running.stderr[-4000:]


def _report(found: Target, work: Path) -> None:
    total = sum(found.statuses.values())
    lines = [
        f"api fuzz: {total} requests ({total - found.hostile} schemathesis, {found.hostile} "
        f"hostile values), seed {SEED}, {MAX_EXAMPLES} examples per operation and role",
        "statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(found.statuses.items())),
        f"5xx: {len(found.server_errors)}",
        *found.server_errors[:20],
    ]
    text = "\n".join(lines)
    print("\n" + text, file=sys.stderr)
    report = os.environ.get("EDGEBOX_FUZZ_REPORT")
    if report:
        Path(report).write_text(text + "\n")


REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "phases": {
            "examples": {"enabled": False},
            "stateful": {"enabled": False},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
        "suppress-health-check": ["all"],
        # schemathesis's list, with the documented 413 of a body past 1 MiB, without 5xx.
        "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
    }
)
# The document the daemon serves is built from the same route list (a test below holds the two
# equal), so the operations are known when pytest collects, without a daemon.
DOCUMENT = build_openapi(ROUTES, __version__)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def _stay_on_loopback(case: Case, found: Target) -> None:
    """An image import from a generated URL would reach out to the network: point it at a
    loopback port where nothing listens (the server still checks the rest)."""
    body = case.body
    if case.operation.label == "POST /api/v1/images" and isinstance(body, dict):
        for key in ("url", "upstream"):
            if isinstance(body.get(key), str):
                body[key] = f"http://127.0.0.1:{found.closed_port}/{key}"
    if case.operation.label == "DELETE /api/v1/tokens/{token_id}":
        token_id = case.path_parameters.get("token_id") if case.path_parameters else None
        if isinstance(token_id, int) and token_id in found.token_ids:
            case.path_parameters["token_id"] = 10**9


def _check(case: Case, role: str, target: Target) -> None:
    _stay_on_loopback(case, target)
    headers = _credentials(case, target.tokens[role])
    response = case.call(base_url=target.api_url, headers=headers, timeout=15)
    target.statuses[response.status_code] += 1
    if response.status_code >= 500:
        target.server_errors.append(
            f"{response.status_code} {case.operation.label} role={role}: {response.text[:200]}"
        )
    case.validate_response(
        response,
        headers=headers,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[_accepted_or_a_rule_the_document_cannot_state],
    )


def _credentials(case: Case, token: str) -> dict[str, str]:
    """The role's token, unless the case is about credentials: schemathesis sends a made-up
    `Bearer ...` with a valid request, and leaves the header out (or mangles it) for an
    invalid one, whose answer must then be a 401."""
    sent = case.headers.get("Authorization") if case.headers else None
    if isinstance(sent, str) and sent.startswith("Bearer "):
        return {"Authorization": f"Bearer {token}"}
    return {}


def _accepted_or_a_rule_the_document_cannot_state(
    ctx: Any, response: Any, case: Case
) -> bool | None:
    """schemathesis's positive_data_acceptance, but a 400 naming a field of SEMANTIC_FIELDS
    (or the 426 of a WebSocket endpoint) is what the document says, not a refusal of it."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        label = case.operation.label
        if response.status_code == 426 and label in WEBSOCKETS:
            return True
        if response.status_code == 400:
            allowed = SEMANTIC_FIELDS.get(label, frozenset())
            if "*" in allowed or response.json().get("field") in allowed:
                return True
        raise


def test_the_daemon_serves_the_fuzzed_document(target: Target) -> None:
    request = urllib.request.Request(
        f"{target.api_url}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {target.tokens['viewer']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read()) == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
def test_api_fuzz_as_viewer(case: Case, target: Target) -> None:
    _check(case, "viewer", target)


@schema.parametrize()
def test_api_fuzz_as_operator(case: Case, target: Target) -> None:
    _check(case, "operator", target)


@schema.parametrize()
def test_api_fuzz_as_admin(case: Case, target: Target) -> None:
    _check(case, "admin", target)


# -- hostile values schemathesis seldom makes -------------------------------------------------

# Each integer parameter (query or path) gets these: a superscript digit that str.isdigit()
# takes, Arabic-Indic digits that int() takes, SQLite's limit plus one, more digits than
# int() converts, a sign, spaces, hex.
HOSTILE_INTEGERS = ("³", "١٢", str(2**63), "9" * 4301, "-1", "+1", " 1", "0x10", "1.0")
HOSTILE_BODIES = (
    b"[" * 1000 + b"]" * 1000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"x": NaN}',
    b'{"x": 1e999}',
    b"9" * 5000,
    b"\xff\xfe",
)


def _hostile_requests(operation: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any], bytes]]:
    """(path parameters, query, raw body) triples, each one hostile in one place."""
    params = operation.definition.raw.get("parameters", [])
    # Path values no object has (and never the id of a token this run uses).
    path = {p["name"]: "987654321" for p in params if p["in"] == "path"}
    for p in params:
        schema = p.get("schema", {})
        if schema.get("type") == "array":
            schema = schema.get("items", {})
        if schema.get("type") != "integer":
            continue
        for value in HOSTILE_INTEGERS:
            if p["in"] == "path":
                yield {**path, p["name"]: value}, {}, b""
            else:
                yield path, {p["name"]: value}, b""
    body = operation.definition.raw.get("requestBody")
    if body is None:
        return
    for raw in HOSTILE_BODIES:
        yield path, {}, raw
    properties = body["content"]["application/json"]["schema"].get("properties", {})
    for name, prop in properties.items():
        if not prop.get("nullable"):
            yield path, {}, json.dumps({name: None}).encode()
        if prop.get("type") == "integer":
            yield path, {}, f'{{"{name}": {2**64}}}'.encode()


def test_hostile_values_never_cost_a_5xx(target: Target) -> None:
    session = requests.Session()
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for path, query, raw in _hostile_requests(operation):
            case = operation.Case(path_parameters=path, query=query)
            url = target.api_url + case.formatted_path
            for role in ROLES:
                headers = {"Authorization": f"Bearer {target.tokens[role]}"}
                if raw:
                    headers["Content-Type"] = "application/json"
                response = session.request(
                    operation.method.upper(), url, params=query, data=raw or None,
                    headers=headers, timeout=15,
                )  # fmt: skip
                sent += 1
                target.hostile += 1
                target.statuses[response.status_code] += 1
                what = f"{operation.label} role={role} {_short(path)} {_short(query)} {raw[:24]!r}"
                if response.status_code >= 500:
                    target.server_errors.append(f"{response.status_code} {what}")
                try:
                    case.validate_response(response, headers=headers)
                except FailureGroup as group:
                    titles = sorted({f"{f.code} {f.title}" for f in group.exceptions})
                    failures.append(f"{response.status_code} {what}: {'; '.join(titles)}")
    print(f"\nhostile values: {sent} requests, {len(failures)} failures", file=sys.stderr)
    assert not failures, "\n".join(failures[:40])


def _short(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={str(v)[:24]!r}" for k, v in values.items())
