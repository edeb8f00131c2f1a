"""The OpenAPI document states what the server enforces: integer ranges, patterns, enums, what
is required, the 413 of a body limit; and each pattern accepts exactly what the server's own
check accepts (property tests: strings made from the pattern are taken, and any string the
server takes matches the pattern)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebox import __version__
from edgebox.api.openapi import build_openapi
from edgebox.api.server import ROUTES
from edgebox.domain.deployment import SSH_KEY_PATTERN, DeployInputError, DeployRequest
from edgebox.domain.deployment import check_request as check_deploy
from edgebox.domain.identifiers import (
    HOSTNAME_PATTERN,
    MAC_MAX_LENGTH,
    MAC_PATTERN,
    NAME_PATTERN,
    check_hostname,
    check_name,
    parse_mac,
)
from edgebox.domain.input_limits import SQLITE_MAX_INT

DOC = build_openapi(ROUTES, __version__)


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in DOC["paths"].items() for m, op in ops.items()]


def test_every_integer_parameter_has_a_range_sqlite_holds() -> None:
    for method, path, op in operations():
        for param in op.get("parameters", []):
            schema = param["schema"]
            schema = schema.get("items", schema) if schema.get("type") == "array" else schema
            if schema.get("type") != "integer":
                continue
            assert schema["minimum"] >= 0, (method, path, param["name"])
            assert schema["maximum"] <= SQLITE_MAX_INT, (method, path, param["name"])


def test_ids_and_cursors_are_integers() -> None:
    def param(path: str, method: str, name: str) -> dict[str, Any]:
        op = DOC["paths"]["/api/v1" + path][method]
        found: dict[str, Any] = next(p for p in op["parameters"] if p["name"] == name)["schema"]
        return found

    for path, method, name, low in [
        ("/machines", "get", "after", 0),
        ("/events", "get", "after", 0),
        ("/tags/{name}/machines", "get", "after", 0),
        ("/tokens/{token_id}", "delete", "token_id", 1),
        ("/rollouts/{rollout_id}", "get", "rollout_id", 1),
        ("/machines/{system_id}/results/{result_id}", "get", "result_id", 1),
    ]:
        schema = param(path, method, name)
        assert (schema["type"], schema["minimum"], schema["maximum"]) == (
            "integer",
            low,
            SQLITE_MAX_INT,
        ), (path, name)
    ops = param("/power/ops", "get", "id")
    assert ops["maxItems"] == 300 and ops["items"]["maximum"] == SQLITE_MAX_INT


def test_a_body_limit_is_documented_as_413() -> None:
    for method, path, op in operations():
        if "requestBody" in op:
            assert "413" in op["responses"], (method, path)
        else:
            assert "413" not in op["responses"], (method, path)


def test_bodies_say_what_is_required_and_what_may_not_be_null() -> None:
    tokens = DOC["paths"]["/api/v1/tokens"]["post"]["requestBody"]
    assert tokens["required"] is True
    schema = tokens["content"]["application/json"]["schema"]
    assert schema["required"] == ["name"]
    assert schema["properties"]["role"]["enum"] == ["admin", "operator", "viewer"]
    assert "nullable" not in schema["properties"]["role"]
    patch = DOC["paths"]["/api/v1/machines/{system_id}"]["patch"]["requestBody"]
    assert patch["required"] is False
    power = DOC["paths"]["/api/v1/power"]["post"]["requestBody"]["content"]["application/json"]
    assert power["schema"]["anyOf"] == [
        {"required": ["machines"], "properties": {"machines": {"minItems": 1}}},
        {"required": ["filter"], "properties": {"filter": {"minProperties": 1}}},
    ]
    for method, path, op in operations():
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        for name, prop in (body or {}).get("schema", {}).get("properties", {}).items():
            assert not prop.get("nullable"), (method, path, name)


def test_scripts_take_text_too() -> None:
    content = DOC["paths"]["/api/v1/scripts"]["post"]["requestBody"]["content"]
    assert content["text/plain"]["schema"]["maxLength"] == 1024 * 1024


def test_the_event_stream_documents_its_426() -> None:
    assert "426" in DOC["paths"]["/api/v1/events/stream"]["get"]["responses"]


# -- patterns and the checks they describe -----------------------------------------------------


def accepts(check: Callable[[str], object]) -> Callable[[str], bool]:
    def accepted(text: str) -> bool:
        try:
            check(text)
        except ValueError:
            return False
        return True

    return accepted


def deploy_key(text: str) -> None:
    try:
        check_deploy(DeployRequest("olga", "tiny", ssh_keys=(text,)))
    except DeployInputError as exc:
        raise ValueError(str(exc)) from None


CASES = [
    (NAME_PATTERN, accepts(lambda t: check_name(t, "pool")), None),
    (HOSTNAME_PATTERN, accepts(check_hostname), None),
    (MAC_PATTERN, accepts(parse_mac), MAC_MAX_LENGTH),
    (SSH_KEY_PATTERN, accepts(deploy_key), None),
]


@pytest.mark.parametrize(("pattern", "server", "longest"), CASES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_what_the_pattern_makes_the_server_takes(
    pattern: str, server: Callable[[str], bool], longest: int | None, data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(pattern, fullmatch=True))
    if longest is None or len(text) <= longest:
        assert server(text), text


@pytest.mark.parametrize(("pattern", "server", "longest"), CASES)
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_what_the_server_takes_matches_the_pattern(
    pattern: str, server: Callable[[str], bool], longest: int | None, text: str
) -> None:
    if server(text):
        assert re.search(pattern, text), text


@pytest.mark.parametrize(
    ("check", "text"),
    [
        (lambda t: check_name(t, "tag"), "gpu\n"),  # `$` once let a trailing newline in
        (check_hostname, "node-1\n\n x"),
        (check_hostname, "\u212aelvin"),  # KELVIN SIGN lowers to an ASCII k
        (parse_mac, "52:54:00:00:00:01" + ":" * 60),
    ],
)
def test_near_misses_are_refused(check: Callable[[str], object], text: str) -> None:
    with pytest.raises(ValueError):
        check(text)
