"""The IPMI worker protocol (lines in, objects out) and the sorting of pyghmi's error texts."""

from __future__ import annotations

import json

import pytest

from edgebox.drivers.power.ipmi_protocol import (
    Failure,
    ProtocolError,
    Reply,
    Request,
    SessionSettings,
    classify,
    encode_reply,
    encode_request,
    failure_of,
    parse_reply,
    parse_request,
)

SETTINGS = SessionSettings(
    host="10.0.0.5",
    port=623,
    username="admin",
    password="s3cret",
    privilege=4,
    cipher_suite=3,
    k_g="0a0b",
    idle_exit=25.0,
)


def test_settings_round_trip_and_hide_secrets_from_repr() -> None:
    assert SessionSettings.parse(SETTINGS.encode()) == SETTINGS
    assert "s3cret" not in repr(SETTINGS)
    assert "0a0b" not in repr(SETTINGS)


def test_settings_with_a_missing_field_are_refused() -> None:
    data = json.loads(SETTINGS.encode())
    del data["password"]
    with pytest.raises(ProtocolError, match="password"):
        SessionSettings.parse(json.dumps(data))


@pytest.mark.parametrize(
    "request_",
    [
        Request(1, "query"),
        Request(2, "on"),
        Request(3, "off"),
        Request(4, "soft_off"),
        Request(5, "cycle"),
        Request(6, "boot", device="network", persistent=False),
        Request(7, "boot", device="hd", persistent=True),
    ],
)
def test_requests_round_trip(request_: Request) -> None:
    line = encode_request(request_)
    assert "\n" not in line
    assert parse_request(line) == request_


def test_request_lines_are_exact() -> None:
    assert json.loads(encode_request(Request(9, "boot", "network", False))) == {
        "id": 9,
        "op": "boot",
        "device": "network",
        "persistent": False,
    }
    assert json.loads(encode_request(Request(1, "query"))) == {"id": 1, "op": "query"}


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("", "not JSON"),
        ("power on", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"op": "on"}', "without 'id'"),
        ('{"id": "1", "op": "on"}', "id: unexpected str"),
        ('{"id": true, "op": "on"}', "id: unexpected bool"),
        ('{"id": 1, "op": "reboot"}', "unknown op 'reboot'"),
        ('{"id": 1, "op": "boot", "device": "floppy"}', "unknown boot device 'floppy'"),
        ('{"id": 1, "op": "boot", "device": "hd", "persistent": 1}', "persistent"),
    ],
)
def test_bad_requests_are_refused(line: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        parse_request(line)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(1, True, result="on"),
        Reply(2, True),
        Reply(3, False, failure=Failure.CREDENTIALS, detail="Incorrect password provided"),
        Reply(4, False, failure=Failure.NO_ANSWER, detail=""),
    ],
)
def test_replies_round_trip(reply: Reply) -> None:
    assert parse_reply(encode_reply(reply)) == reply


@pytest.mark.parametrize(
    "line",
    [
        '{"id": 1, "ok": false, "failure": "exploded", "detail": ""}',
        '{"id": 1, "ok": true}',
        '{"id": 1, "ok": "yes", "result": ""}',
        "Traceback (most recent call last):",
    ],
)
def test_bad_replies_are_protocol_errors(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(line)


# The texts pyghmi 1.6 produces (from its session code and its completion-code tables).
@pytest.mark.parametrize(
    ("text", "failure"),
    [
        ("Incorrect password provided", Failure.CREDENTIALS),
        ("Unauthorized name in RAKP2", Failure.CREDENTIALS),
        ("Invalid RAKP4 integrity code (wrong Kg?)", Failure.CREDENTIALS),
        ("Invalid integrity check value in RAKP2", Failure.CREDENTIALS),
        ("Invalid user name", Failure.CREDENTIALS),
        ("Password is too long for ipmi 1.5", Failure.CREDENTIALS),
        ("Insufficient privilege level or firmware firewall", Failure.PRIVILEGE),
        ("Unauthorized role or privilege level requested in RAKP2", Failure.PRIVILEGE),
        (
            "Requested privilege level exceeds requested user permissions on this channel",
            Failure.PRIVILEGE,
        ),
        ("Invalid authentication algorithm", Failure.CIPHER_SUITE),
        ("Invalid integrity algorithm", Failure.CIPHER_SUITE),
        ("No Cipher suite match with proposed security algorithms", Failure.CIPHER_SUITE),
        ("Invalid command", Failure.UNSUPPORTED),
        ("Command not supported in present state", Failure.UNSUPPORTED),
        ("Invalid data field in request", Failure.UNSUPPORTED),
        ("Unknown bootdevice floppy requested", Failure.UNSUPPORTED),
        ("Node Busy", Failure.BUSY),
        ("Insufficient resources to create new session (wait for ...)", Failure.BUSY),
        ("No slot available with requested privilege level", Failure.BUSY),
        ("BMC initialization in progress", Failure.BUSY),
        ("Timeout while processing command", Failure.BUSY),
        ("", Failure.NO_ANSWER),
        ("timeout", Failure.NO_ANSWER),
        ("Session no longer connected", Failure.NO_ANSWER),
        ("Session failed to initialize", Failure.NO_ANSWER),
        ("Unspecified", Failure.FAILED),
        ("Command response could not be provided", Failure.FAILED),
    ],
)
def test_pyghmi_texts_are_classified(text: str, failure: Failure) -> None:
    assert classify(text) is failure


def test_exceptions_become_failures() -> None:
    # An unreachable BMC: pyghmi raises IpmiException(None) after ~5 s (LAB.md).
    assert failure_of(Exception(None)) == (Failure.NO_ANSWER, "")
    assert failure_of(Exception("Incorrect password provided")) == (
        Failure.CREDENTIALS,
        "Incorrect password provided",
    )
    failure, detail = failure_of(OSError(101, "Network is unreachable"))
    assert failure is Failure.NO_ANSWER
    assert "unreachable" in detail
    assert failure_of(KeyError("powerstate")) == (Failure.FAILED, "powerstate")
