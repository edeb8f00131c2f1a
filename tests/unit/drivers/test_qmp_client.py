"""The QMP client: the pure codec, then the asyncio client against fake QMP servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from fake_qmp import FakeQemu, FakeVm

from edgebox.drivers.qmp import (
    QmpClient,
    QmpCommandError,
    QmpConnectionError,
    QmpEvent,
    QmpGreeting,
    QmpProtocolError,
    QmpReply,
    encode_command,
    parse_message,
)

# -- the pure core -----------------------------------------------------------------------------


def test_encode_command_is_one_json_line_with_id_and_arguments() -> None:
    line = encode_command("qom-get", {"path": "/machine/peripheral/nic0", "property": "x"}, 7)
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "execute": "qom-get",
        "id": 7,
        "arguments": {"path": "/machine/peripheral/nic0", "property": "x"},
    }
    assert json.loads(encode_command("stop", None, 1)) == {"execute": "stop", "id": 1}


def test_parse_greeting_reply_error_and_event() -> None:
    greeting = parse_message(
        b'{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": ["oob"]}}\r\n'
    )
    assert greeting == QmpGreeting({"qemu": {"major": 7}}, ("oob",))
    assert parse_message(b'{"return": {"status": "running"}, "id": 3}') == QmpReply(
        3, {"status": "running"}
    )
    error = parse_message(b'{"error": {"class": "GenericError", "desc": "nope"}, "id": 4}')
    assert error == QmpReply(4, error_class="GenericError", desc="nope")
    assert isinstance(error, QmpReply) and not error.ok
    event = parse_message(b'{"event": "RESET", "data": {"guest": true}, "timestamp": {}}')
    assert event == QmpEvent("RESET", {"guest": True})


@pytest.mark.parametrize(
    "line", [b"SSH-2.0-OpenSSH_9.2\r\n", b"[1, 2]\n", b'{"hello": 1}\n', b'{"error": "x"}\n']
)
def test_parse_rejects_what_is_not_qmp(line: bytes) -> None:
    with pytest.raises(QmpProtocolError):
        parse_message(line)


# -- the client against a fake QEMU ------------------------------------------------------------


async def test_negotiates_then_executes_commands(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="running")) as qemu:
        async with await QmpClient.connect(sock_dir / "qmp", 2) as qmp:
            assert qmp.greeting is not None
            assert qmp.greeting.version["qemu"]["major"] == 7
            status = await qmp.execute("query-status")
            index = await qmp.execute(
                "qom-get", {"path": "/machine/peripheral/disk0", "property": "bootindex"}
            )
        assert status["status"] == "running"
        assert index == 2
        assert [name for name, _ in qemu.commands] == [
            "qmp_capabilities",
            "query-status",
            "qom-get",
        ]


async def test_events_interleaved_before_a_reply_are_skipped_and_kept(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp") as qemu:
        qemu.extra_events = ["NIC_RX_FILTER_CHANGED"]
        async with await QmpClient.connect(sock_dir / "qmp", 2) as qmp:
            assert (await qmp.execute("query-status"))["status"] == "prelaunch"
            assert await qmp.execute("system_reset") == {}
            # RESET came after the reply, NIC_RX_FILTER_CHANGED before it: both were kept.
            assert (await qmp.wait_event("RESET")).name == "RESET"
            assert (await qmp.wait_event("NIC_RX_FILTER_CHANGED")).name == "NIC_RX_FILTER_CHANGED"


async def test_an_error_reply_raises_with_qemus_class_and_description(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp", FakeVm(status="shutdown")) as qemu:
        async with await QmpClient.connect(sock_dir / "qmp", 2) as qmp:
            with pytest.raises(QmpCommandError) as raised:
                await qmp.execute("cont")
            assert raised.value.desc == "Resetting the Virtual Machine is required"
            assert raised.value.error_class == "GenericError"
            # The session survives a refused command.
            assert (await qmp.execute("query-status"))["status"] == "shutdown"
        assert qemu.commands[-1][0] == "query-status"


async def test_a_missing_socket_is_a_connection_error(sock_dir: Path) -> None:
    with pytest.raises(QmpConnectionError, match="No such file"):
        await QmpClient.connect(sock_dir / "absent", 2)


async def _serve(path: Path, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                               Awaitable[None]]) -> asyncio.Server:  # fmt: skip
    return await asyncio.start_unix_server(handler, path=str(path))


async def test_a_peer_that_never_greets_times_out(sock_dir: Path) -> None:
    async with FakeQemu(sock_dir / "qmp") as qemu:
        qemu.silent = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(QmpConnectionError, match=r"no answer within 0\.2s"):
            await QmpClient.connect(sock_dir / "qmp", 0.2)
        assert loop.time() - started < 2


async def test_a_peer_that_is_not_qemu_is_a_protocol_error(sock_dir: Path) -> None:
    async def ssh_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await _serve(sock_dir / "qmp", ssh_like)
    async with server:
        with pytest.raises(QmpProtocolError, match="not JSON"):
            await QmpClient.connect(sock_dir / "qmp", 2)


async def test_qemu_going_away_mid_command_is_a_connection_error(sock_dir: Path) -> None:
    async def dies_after_capabilities(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        await reader.readline()
        writer.write(b'{"return": {}, "id": 1}\r\n')
        await reader.readline()
        writer.close()  # QEMU exits while the command is pending

    server = await _serve(sock_dir / "qmp", dies_after_capabilities)
    async with server, await QmpClient.connect(sock_dir / "qmp", 2) as qmp:
        with pytest.raises(QmpConnectionError, match="closed the connection"):
            await qmp.execute("query-status")
