"""TftpServer: request datagrams in, decisions out."""

from __future__ import annotations

import pytest

from edgebox.wire.tftp import (
    BusyResponse,
    Drop,
    FileError,
    FileErrorKind,
    FileSource,
    Reply,
    StartTransfer,
    TftpServer,
    TftpServerConfig,
    TransferLimits,
    encode_ack,
    encode_data,
    encode_error,
)

T0 = 50.0
CLIENT = ("192.0.2.10", 2070)


class BytesSource:
    def __init__(self, content: bytes) -> None:
        self.content = content

    @property
    def size(self) -> int:
        return len(self.content)

    def read(self, offset: int, length: int) -> bytes:
        return self.content[offset : offset + length]


class FakeRoot:
    """A resolver over a dict, recording what it was asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.asked: list[str] = []

    def __call__(self, path: str) -> FileSource | FileError:
        self.asked.append(path)
        if path == "secret":
            return FileError(FileErrorKind.ACCESS_VIOLATION, "mode 0600")
        if path == "flaky":
            return FileError(FileErrorKind.UNAVAILABLE, "EIO")
        if path not in self.files:
            return FileError(FileErrorKind.NOT_FOUND, f"/srv/tftp/{path}")
        return BytesSource(self.files[path])


def rrq(filename: str, mode: str = "octet", options: bytes = b"") -> bytes:
    return b"\x00\x01" + filename.encode() + b"\x00" + mode.encode() + b"\x00" + options


@pytest.fixture
def root() -> FakeRoot:
    return FakeRoot({"undionly.kpxe": b"x" * 1000, "efi/snponly.efi": b"y" * 100})


def test_read_request_starts_a_transfer(root: FakeRoot) -> None:
    server = TftpServer()
    decision = server.handle_request(rrq("undionly.kpxe"), CLIENT, T0, root)
    assert isinstance(decision, StartTransfer)
    assert decision.client_addr == CLIENT
    assert decision.filename == "undionly.kpxe"
    assert decision.packets == (encode_data(1, b"x" * 512),)
    assert decision.transfer.get_timer() == T0 + 1.0
    assert server.active_transfers == 1


def test_options_are_negotiated_and_oack_sent(root: FakeRoot) -> None:
    server = TftpServer(TftpServerConfig(limits=TransferLimits(max_blksize=1024)))
    options = b"blksize\x001468\x00tsize\x000\x00foo\x00bar\x00"
    decision = server.handle_request(rrq("undionly.kpxe", options=options), CLIENT, T0, root)
    assert isinstance(decision, StartTransfer)
    assert decision.packets == (b"\x00\x06blksize\x001024\x00tsize\x001000\x00",)


def test_request_path_is_normalised_before_the_resolver_sees_it(root: FakeRoot) -> None:
    decision = TftpServer().handle_request(rrq("\\efi\\snponly.efi"), CLIENT, T0, root)
    assert isinstance(decision, StartTransfer)
    assert root.asked == ["efi/snponly.efi"]


@pytest.mark.parametrize(
    ("filename", "code", "message"),
    [
        ("missing.efi", 1, "file not found"),
        ("secret", 2, "access violation"),
        ("flaky", 0, "file unavailable"),
        ("../etc/passwd", 2, "access violation"),
        ("/", 2, "access violation"),
    ],
)
def test_resolver_and_path_refusals_map_to_error_codes(
    root: FakeRoot, filename: str, code: int, message: str
) -> None:
    decision = TftpServer().handle_request(rrq(filename), CLIENT, T0, root)
    assert isinstance(decision, Reply)
    assert decision.packet == encode_error(code, message)
    assert decision.client_addr == CLIENT


def test_refusal_detail_goes_to_the_log_not_the_client(root: FakeRoot) -> None:
    decision = TftpServer().handle_request(rrq("nothing"), CLIENT, T0, root)
    assert isinstance(decision, Reply)
    assert "/srv/tftp/nothing" in decision.reason
    assert b"/srv" not in decision.packet


def test_path_refusal_never_reaches_the_resolver(root: FakeRoot) -> None:
    TftpServer().handle_request(rrq("a/../../b"), CLIENT, T0, root)
    assert root.asked == []


def test_write_request_is_refused(root: FakeRoot) -> None:
    decision = TftpServer().handle_request(b"\x00\x02up.bin\x00octet\x00", CLIENT, T0, root)
    assert isinstance(decision, Reply)
    assert decision.packet == encode_error(2, "writes are not accepted")
    assert root.asked == []


@pytest.mark.parametrize("mode", ["netascii", "NetASCII", "mail"])
def test_only_octet_mode_is_served(root: FakeRoot, mode: str) -> None:
    decision = TftpServer().handle_request(rrq("undionly.kpxe", mode), CLIENT, T0, root)
    assert isinstance(decision, Reply)
    assert decision.packet == encode_error(0, "only octet mode is supported")


def test_malformed_request_gets_error_4(root: FakeRoot) -> None:
    decision = TftpServer().handle_request(b"\x00\x01file-without-mode\x00", CLIENT, T0, root)
    assert isinstance(decision, Reply)
    assert decision.packet == encode_error(4, "malformed request")
    assert "no mode" in decision.reason


@pytest.mark.parametrize("packet", [encode_ack(1), encode_data(1, b"x"), b"\x00\x06"])
def test_transfer_packets_on_the_request_port_get_error_4(root: FakeRoot, packet: bytes) -> None:
    decision = TftpServer().handle_request(packet, CLIENT, T0, root)
    assert isinstance(decision, Reply)
    assert decision.packet == encode_error(4, "expected a read request")


@pytest.mark.parametrize("packet", [encode_error(0, "bye"), b"\x00\x05\x00"])
def test_errors_on_the_request_port_are_never_answered(root: FakeRoot, packet: bytes) -> None:
    assert isinstance(TftpServer().handle_request(packet, CLIENT, T0, root), Drop)


def test_repeated_rrq_from_a_client_with_a_running_transfer_is_dropped(root: FakeRoot) -> None:
    server = TftpServer()
    assert isinstance(server.handle_request(rrq("undionly.kpxe"), CLIENT, T0, root), StartTransfer)
    decision = server.handle_request(rrq("undionly.kpxe"), CLIENT, T0 + 0.5, root)
    assert isinstance(decision, Drop)
    assert server.active_transfers == 1


def test_client_can_request_again_once_its_transfer_ended(root: FakeRoot) -> None:
    # The PXE tsize probe: RRQ with tsize, OACK, ERROR from the client, then the real RRQ
    # from the same port.
    server = TftpServer()
    first = server.handle_request(rrq("undionly.kpxe", options=b"tsize\x000\x00"), CLIENT, T0, root)
    assert isinstance(first, StartTransfer)
    first.transfer.receive(encode_error(0, "TFTP Aborted"), T0 + 0.01)
    second = server.handle_request(rrq("undionly.kpxe"), CLIENT, T0 + 0.02, root)
    assert isinstance(second, StartTransfer)
    assert server.stats().started == 2


def test_concurrency_bound_answers_busy_and_is_observable(root: FakeRoot) -> None:
    server = TftpServer(TftpServerConfig(max_transfers=2))
    starts = [
        server.handle_request(rrq("undionly.kpxe"), ("192.0.2.1", port), T0, root)
        for port in (1001, 1002)
    ]
    assert all(isinstance(decision, StartTransfer) for decision in starts)
    busy = server.handle_request(rrq("undionly.kpxe"), ("192.0.2.1", 1003), T0, root)
    assert isinstance(busy, Reply)
    assert busy.packet == encode_error(0, "server busy, retry")
    assert server.active_transfers == 2
    assert root.asked == ["undionly.kpxe", "undionly.kpxe"]  # busy: no file was opened
    stats = server.stats()
    assert (stats.active_transfers, stats.started, stats.refused_busy) == (2, 2, 1)

    # One finishes: a slot frees up without the adapter having to say so.
    first = starts[0]
    assert isinstance(first, StartTransfer)
    first.transfer.receive(encode_ack(1), T0)
    first.transfer.receive(encode_ack(2), T0)
    assert first.transfer.done
    assert server.active_transfers == 1
    again = server.handle_request(rrq("undionly.kpxe"), ("192.0.2.1", 1003), T0, root)
    assert isinstance(again, StartTransfer)


def test_busy_can_be_silent(root: FakeRoot) -> None:
    config = TftpServerConfig(max_transfers=1, busy_response=BusyResponse.DROP)
    server = TftpServer(config)
    server.handle_request(rrq("undionly.kpxe"), ("192.0.2.1", 1001), T0, root)
    decision = server.handle_request(rrq("undionly.kpxe"), ("192.0.2.1", 1002), T0, root)
    assert isinstance(decision, Drop)
    assert server.stats().refused_busy == 1


def test_release_frees_the_slot(root: FakeRoot) -> None:
    server = TftpServer(TftpServerConfig(max_transfers=1))
    server.handle_request(rrq("undionly.kpxe"), CLIENT, T0, root)
    server.release(CLIENT)
    server.release(CLIENT)  # idempotent
    assert server.active_transfers == 0


def test_first_read_failure_is_a_reply_not_a_transfer() -> None:
    class Unreadable:
        size = 10

        def read(self, offset: int, length: int) -> bytes:
            raise OSError("gone")

    server = TftpServer()
    decision = server.handle_request(rrq("f"), CLIENT, T0, lambda path: Unreadable())
    assert isinstance(decision, Reply)
    assert decision.packet == encode_error(0, "error reading file")
    assert server.active_transfers == 0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        TftpServerConfig(max_transfers=0)
