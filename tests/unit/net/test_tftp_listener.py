"""The TFTP adapter on loopback: real sockets on 127.0.0.1, a port the kernel picks, no root.

The client is a small Python one (tftp_test_client.py) run on a thread while the listener
serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edgebox.domain.tftp_settings import TftpInterfaceSettings, TftpSettings
from edgebox.net import tftp_listener
from edgebox.net.tftp_listener import TftpEndpoint, TftpListener, server_config
from edgebox.services.tftp_files import ServedFile, TftpFiles
from edgebox.wire.tftp import (
    ERROR,
    OACK,
    ErrorCode,
    FileError,
    TftpServerConfig,
    TransferLimits,
    encode_ack,
    encode_error,
    parse_packet,
)
from tests.unit.net.tftp_test_client import fetch, tftp_request

BIG = bytes((i * 7 + i // 251) % 256 for i in range(300_000))  # 205 blocks of 1468, odd tail
FAST = TransferLimits(default_timeout=0.05, max_retransmits=3)


class CountingFiles:
    """TftpFiles, counting the handles given out and closed."""

    def __init__(self, root: Path) -> None:
        self.files = TftpFiles([root])
        self.opened = 0
        self.closed = 0

    def open(self, name: str, client_ip: str) -> ServedFile | FileError:
        found = self.files.open(name, client_ip)
        if isinstance(found, FileError):
            return found
        self.opened += 1
        return _Counted(self, found)

    def close_idle(self) -> int:
        return self.files.close_idle()

    def close(self) -> None:
        self.files.close()


class _Counted:
    def __init__(self, files: CountingFiles, inner: ServedFile) -> None:
        self.files = files
        self.inner = inner
        self.size = inner.size

    def read(self, offset: int, length: int) -> bytes:
        return self.inner.read(offset, length)

    def close(self) -> None:
        self.files.closed += 1
        self.inner.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "big.bin").write_bytes(BIG)
    (root / "small.txt").write_bytes(b"hello tftp")
    (root / "exact.bin").write_bytes(b"x" * 1024)  # a multiple of 512: empty final block
    (tmp_path / "secret").write_bytes(b"secret")
    (root / "escape").symlink_to(tmp_path / "secret")
    return root


@pytest.fixture
def files(root: Path) -> CountingFiles:
    return CountingFiles(root)


@contextlib.asynccontextmanager
async def serving(
    files: CountingFiles, config: TftpServerConfig | None = None
) -> AsyncIterator[tuple[TftpListener, tuple[str, int]]]:
    listener = TftpListener([TftpEndpoint("", address="127.0.0.1", port=0)], files, config)
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.wait_up(), 5)
    port = listener.status().interfaces[0].port
    try:
        yield listener, ("127.0.0.1", port)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_plain_rfc1350_fetch(files: CountingFiles) -> None:
    async with serving(files) as (listener, server):
        got = await asyncio.to_thread(fetch, server, "small.txt")
        assert got.ok and got.data == b"hello tftp" and got.oack == {}
        assert got.server_tid is not None and got.server_tid[1] != server[1]  # a fresh TID
        exact = await asyncio.to_thread(fetch, server, "/exact.bin")
        assert exact.data == b"x" * 1024
        await until(lambda: listener.status().completed == 2)
        status = listener.status()
        assert (status.active, status.failed, status.started) == (0, 0, 2)
        assert status.bytes_sent == 10 + 1024
        assert status.outcomes == {"completed": 2}
        assert files.opened == files.closed == 2


async def test_negotiated_blksize_windowsize_and_tsize(files: CountingFiles) -> None:
    options = {"blksize": "1468", "windowsize": "8", "tsize": "0"}
    async with serving(files) as (listener, server):
        got = await asyncio.to_thread(fetch, server, "big.bin", options)
        assert got.oack == {"blksize": "1468", "windowsize": "8", "tsize": str(len(BIG))}
        assert got.data == BIG
        assert got.duplicates == 0
        await until(lambda: listener.status().completed == 1)
        assert listener.status().retransmits == 0


async def test_lost_blocks_are_resent_by_the_timer(files: CountingFiles) -> None:
    config = TftpServerConfig(limits=FAST)
    async with serving(files, config) as (listener, server):
        got = await asyncio.to_thread(
            fetch, server, "big.bin", {"blksize": "1468"}, lambda b: b % 50 == 3
        )
        assert got.data == BIG
        windowed = await asyncio.to_thread(
            fetch, server, "big.bin", {"blksize": "1468", "windowsize": "4"}, lambda b: b == 10
        )
        assert windowed.data == BIG
        await until(lambda: listener.status().completed == 2)
        assert listener.status().retransmits >= 5


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("nothing.bin", ErrorCode.FILE_NOT_FOUND),
        ("../secret", ErrorCode.ACCESS_VIOLATION),
        ("escape", ErrorCode.ACCESS_VIOLATION),
    ],
)
async def test_refusals_are_error_packets(files: CountingFiles, name: str, code: int) -> None:
    async with serving(files) as (listener, server):
        got = await asyncio.to_thread(fetch, server, name)
        assert got.error is not None and got.error.code == code
        assert got.server_tid == server  # refusals come from port 69
        assert listener.status().refused == 1
        assert files.opened == 0


async def test_a_write_request_is_refused(files: CountingFiles, root: Path) -> None:
    async with serving(files) as (listener, server):
        sock, reply, _ = await asyncio.to_thread(tftp_request, server, "new.bin", write=True)
        sock.close()
        packet = parse_packet(reply)
        assert isinstance(packet, ERROR) and packet.code == ErrorCode.ACCESS_VIOLATION
        assert not (root / "new.bin").exists()
        assert listener.status().refused == 1


async def test_a_stranger_on_a_transfer_port_gets_unknown_tid(files: CountingFiles) -> None:
    async with serving(files) as (listener, server):
        sock, _, tid = await asyncio.to_thread(tftp_request, server, "small.txt")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.settimeout(3)
            stranger.sendto(encode_ack(1), tid)
            reply, _ = await asyncio.to_thread(stranger.recvfrom, 100)
        packet = parse_packet(reply)
        assert isinstance(packet, ERROR) and packet.code == ErrorCode.UNKNOWN_TID
        sock.sendto(encode_ack(1), tid)  # the real client finishes undisturbed
        sock.close()
        await until(lambda: listener.status().completed == 1)


async def test_a_pxe_tsize_probe_ends_quietly(files: CountingFiles) -> None:
    """PXE ROMs ask for tsize, read the OACK, and abort with ERROR before fetching for real."""
    async with serving(files) as (listener, server):
        sock, first, tid = await asyncio.to_thread(tftp_request, server, "big.bin", {"tsize": "0"})
        assert parse_packet(first) == OACK((("tsize", str(len(BIG))),))
        sock.sendto(encode_error(ErrorCode.OPTION_REFUSED, "tsize probe"), tid)
        sock.close()
        await until(lambda: listener.status().failed == 1)
        assert listener.status().outcomes == {"client error": 1}
        assert files.opened == files.closed == 1
        got = await asyncio.to_thread(fetch, server, "big.bin", {"tsize": "0"})
        assert got.data == BIG


async def test_a_vanished_client_times_out_and_frees_everything(files: CountingFiles) -> None:
    config = TftpServerConfig(limits=FAST)
    async with serving(files, config) as (listener, server):
        sock, _, _ = await asyncio.to_thread(tftp_request, server, "big.bin")
        sock.close()  # never acknowledges
        await until(lambda: listener.status().failed == 1)
        status = listener.status()
        assert status.outcomes == {"timed out": 1}
        assert status.retransmits == 3 and status.active == 0
        assert files.opened == files.closed == 1


async def test_the_bound_refuses_the_next_client_and_counts_it(files: CountingFiles) -> None:
    async with serving(files, TftpServerConfig(max_transfers=1)) as (listener, server):
        holder, _, _ = await asyncio.to_thread(tftp_request, server, "big.bin")
        got = await asyncio.to_thread(fetch, server, "small.txt")
        assert got.error is not None and got.error.code == ErrorCode.NOT_DEFINED
        assert "busy" in got.error.message
        status = listener.status()
        assert (status.active, status.refused_busy, status.max_transfers) == (1, 1, 1)
        holder.close()


async def test_a_retransmitted_rrq_does_not_start_a_second_transfer(files: CountingFiles) -> None:
    async with serving(files) as (listener, server):
        sock, _, _ = await asyncio.to_thread(tftp_request, server, "small.txt")
        sock.sendto(b"\x00\x01small.txt\x00octet\x00", server)  # the same RRQ again
        await until(lambda: listener.status().dropped == 1)
        assert listener.status().started == 1
        sock.close()


def open_sockets() -> int:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return sum(link.startswith("socket:") for link in links)


async def test_cancel_aborts_transfers_and_closes_sockets(files: CountingFiles) -> None:
    sockets_before = open_sockets()
    listener = TftpListener([TftpEndpoint("", address="127.0.0.1", port=0)], files)
    task = asyncio.create_task(listener.run())
    await listener.wait_up()
    server = ("127.0.0.1", listener.status().interfaces[0].port)
    sock, _, _ = await asyncio.to_thread(tftp_request, server, "big.bin")
    await until(lambda: listener.status().active == 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    reply, _ = await asyncio.to_thread(sock.recvfrom, 2000)
    while parse_packet(reply).__class__ is not ERROR:  # the first DATA may still be queued
        reply, _ = await asyncio.to_thread(sock.recvfrom, 2000)
    sock.close()
    assert "shutting down" in parse_packet(reply).message  # type: ignore[union-attr]
    assert listener.status().outcomes == {"aborted": 1}
    assert files.opened == files.closed == 1
    assert open_sockets() == sockets_before  # the request and the transfer socket are closed
    assert files.files.open_descriptors == 0  # and the file, idle in the cache until now


async def test_generated_files_are_served_per_client(files: CountingFiles) -> None:
    files.files.register_generated("boot.ipxe", lambda ip: f"#!ipxe\n# {ip}\n".encode())
    async with serving(files) as (_, server):
        got = await asyncio.to_thread(fetch, server, "boot.ipxe")
        assert got.data == b"#!ipxe\n# 127.0.0.1\n"


async def test_concurrent_fetches_are_byte_identical(files: CountingFiles) -> None:
    async with serving(files) as (listener, server):
        results = await asyncio.gather(
            *(
                asyncio.to_thread(fetch, server, "big.bin", {"blksize": "1468", "windowsize": w})
                for w in ["1", "4", "8", "16"] * 5
            )
        )
        assert all(r.data == BIG for r in results)
        await until(lambda: listener.status().completed == 20)
        assert files.files.open_descriptors == 1  # one descriptor served all twenty


async def test_an_endpoint_that_cannot_open_is_reported_and_retried(
    files: CountingFiles, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tftp_listener, "RETRY_OPEN", 0.05)
    caplog.set_level(logging.WARNING)
    good = TftpEndpoint("", address="127.0.0.1", port=0)
    bad = TftpEndpoint("", address="192.0.2.1", port=0)  # not an address of this host
    listener = TftpListener([bad, good], files)
    task = asyncio.create_task(listener.run())
    try:
        await until(lambda: listener.status().interfaces[1].state == "up")
        await until(lambda: caplog.text.count("tftp cannot listen") >= 2)  # retried
        failed = listener.status().interfaces[0]
        assert failed.state == "failed" and "assign" in failed.error
        server = ("127.0.0.1", listener.status().interfaces[1].port)
        got = await asyncio.to_thread(fetch, server, "small.txt")
        assert got.data == b"hello tftp"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_transfer_end_is_logged(
    files: CountingFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgebox.net.tftp_listener")
    async with serving(files) as (listener, server):
        await asyncio.to_thread(fetch, server, "small.txt")
        await until(lambda: listener.status().completed == 1)
    line = next(r.getMessage() for r in caplog.records if "transfer ended" in r.getMessage())
    assert "client=127.0.0.1:" in line and "file=small.txt" in line
    assert "bytes=10" in line and "outcome=completed" in line and "seconds=" in line


async def test_no_interfaces_means_no_sockets(files: CountingFiles) -> None:
    listener = TftpListener.from_settings(TftpSettings(), files)
    await asyncio.wait_for(listener.run(), 1)  # returns at once
    assert listener.status().interfaces == ()


def test_settings_map_onto_the_core() -> None:
    settings = TftpSettings(
        interfaces=(TftpInterfaceSettings(name="eth1", netns="lab"),),
        max_transfers=7,
        max_blksize=1024,
        max_windowsize=4,
        timeout=0.5,
        retries=2,
    )
    config = server_config(settings)
    assert config.max_transfers == 7
    assert config.limits == TransferLimits(
        max_blksize=1024, max_windowsize=4, default_timeout=0.5, max_retransmits=2
    )
    listener = TftpListener.from_settings(settings, TftpFiles([]))
    assert listener.endpoints == (TftpEndpoint("eth1", "lab", "0.0.0.0", 69),)
