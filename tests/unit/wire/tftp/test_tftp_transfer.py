"""ReadTransfer: bytes in, datagrams out, fake time."""

from __future__ import annotations

import pytest

from edgebox.wire.tftp import (
    DATA,
    RRQ,
    Options,
    Outcome,
    ReadTransfer,
    TransferLimits,
    TransferState,
    TransferStateError,
    encode_ack,
    encode_data,
    encode_error,
    negotiate_options,
    parse_packet,
    unknown_tid_error,
)

T0 = 1000.0


class BytesSource:
    def __init__(self, content: bytes) -> None:
        self.content = content
        self.reads = 0

    @property
    def size(self) -> int:
        return len(self.content)

    def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        return self.content[offset : offset + length]


class BrokenSource:
    def __init__(self, fail_at: int, short: bool = False) -> None:
        self.fail_at = fail_at
        self.short = short

    def read(self, offset: int, length: int) -> bytes:
        if offset >= self.fail_at:
            if self.short:
                return b"\0" * (length - 1)
            raise OSError(5, "Input/output error")
        return b"\0" * length


def make_transfer(
    content: bytes, options: Options = (), limits: TransferLimits | None = None
) -> ReadTransfer:
    limits = limits or TransferLimits()
    negotiated = negotiate_options(options, len(content), limits)
    request = RRQ("undionly.kpxe", "octet", options)
    return ReadTransfer(request, negotiated, len(content), BytesSource(content), limits)


def content_of(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def data(block: int, content: bytes, blksize: int) -> bytes:
    """The DATA datagram for 1-based block `block` of `content`."""
    start = (block - 1) * blksize
    return encode_data(block % 65536, content[start : start + blksize])


def ack(block: int) -> bytes:
    return encode_ack(block % 65536)


# --- complete transfers with exact packets -----------------------------------------------------


def test_plain_rfc1350_transfer_at_blksize_512() -> None:
    content = content_of(1300)
    transfer = make_transfer(content)
    assert transfer.start(T0) == [data(1, content, 512)]
    assert transfer.receive(ack(1), T0 + 0.01) == [data(2, content, 512)]
    assert transfer.receive(ack(2), T0 + 0.02) == [data(3, content, 512)]
    assert len(data(3, content, 512)) == 4 + 276
    assert not transfer.done
    assert transfer.receive(ack(3), T0 + 0.03) == []
    assert transfer.done
    assert transfer.state is TransferState.COMPLETED
    assert transfer.get_timer() is None
    result = transfer.result
    assert result is not None and result.ok
    assert (result.bytes_sent, result.bytes_acknowledged, result.retransmits) == (1300, 1300, 0)


def test_transfer_at_blksize_1468_starts_with_oack() -> None:
    content = content_of(3000)
    transfer = make_transfer(content, (("blksize", "1468"), ("tsize", "0")))
    assert transfer.start(T0) == [b"\x00\x06blksize\x001468\x00tsize\x003000\x00"]
    assert transfer.receive(ack(0), T0) == [data(1, content, 1468)]
    assert transfer.receive(ack(1), T0) == [data(2, content, 1468)]
    assert transfer.receive(ack(2), T0) == [data(3, content, 1468)]
    assert len(data(3, content, 1468)) == 4 + 3000 - 2 * 1468
    assert transfer.receive(ack(3), T0) == []
    assert transfer.result is not None and transfer.result.ok


def test_size_that_is_a_multiple_of_blksize_ends_with_an_empty_block() -> None:
    content = content_of(1024)
    transfer = make_transfer(content)
    transfer.start(T0)
    transfer.receive(ack(1), T0)
    assert transfer.receive(ack(2), T0) == [b"\x00\x03\x00\x03"]
    assert not transfer.done
    transfer.receive(ack(3), T0)
    assert transfer.result is not None and transfer.result.ok


def test_empty_file_is_one_empty_block() -> None:
    transfer = make_transfer(b"", (("tsize", "0"),))
    assert transfer.start(T0) == [b"\x00\x06tsize\x000\x00"]
    assert transfer.receive(ack(0), T0) == [b"\x00\x03\x00\x01"]
    assert transfer.receive(ack(1), T0) == []
    assert transfer.result is not None and transfer.result.ok


# --- windows (RFC 7440) --------------------------------------------------------------------------


def test_windowsize_1_is_lock_step() -> None:
    content = content_of(600)
    transfer = make_transfer(content, (("windowsize", "1"),))
    assert transfer.start(T0) == [b"\x00\x06windowsize\x001\x00"]
    assert transfer.receive(ack(0), T0) == [data(1, content, 512)]
    assert transfer.receive(ack(1), T0) == [data(2, content, 512)]
    assert transfer.receive(ack(2), T0) == []
    assert transfer.done


def test_windowsize_8_sends_whole_windows() -> None:
    content = content_of(512 * 10 + 100)  # 11 blocks
    transfer = make_transfer(content, (("windowsize", "8"),))
    transfer.start(T0)
    assert transfer.receive(ack(0), T0) == [data(n, content, 512) for n in range(1, 9)]
    assert transfer.receive(ack(8), T0) == [data(n, content, 512) for n in range(9, 12)]
    assert transfer.receive(ack(11), T0) == []
    assert transfer.result is not None and transfer.result.ok


def test_partial_window_ack_resends_from_the_next_block() -> None:
    content = content_of(512 * 20)  # 21 blocks, the last one empty
    transfer = make_transfer(content, (("windowsize", "8"),))
    transfer.start(T0)
    transfer.receive(ack(0), T0)  # blocks 1..8 out
    # The client lost block 6 and acknowledges 5: the next window starts at 6.
    assert transfer.receive(ack(5), T0 + 0.1) == [data(n, content, 512) for n in range(6, 14)]
    # A late ACK for 3 is stale now and changes nothing.
    assert transfer.receive(ack(3), T0 + 0.1) == []
    assert transfer.receive(ack(13), T0 + 0.2) == [data(n, content, 512) for n in range(14, 22)]
    assert transfer.receive(ack(21), T0 + 0.3) == []
    result = transfer.result
    assert result is not None and result.ok and result.duplicate_acks == 1


def test_lost_ack_at_the_end_of_a_window_is_recovered_by_the_timer() -> None:
    content = content_of(512 * 12)
    transfer = make_transfer(content, (("windowsize", "8"),))
    transfer.start(T0)
    first_window = transfer.receive(ack(0), T0)
    # ACK 8 is lost: nothing happens until the timer, which resends the whole window.
    assert transfer.get_timer() == T0 + 1.0
    assert transfer.handle_timer(T0 + 0.5) == []
    assert transfer.handle_timer(T0 + 1.0) == first_window
    assert transfer.get_timer() == T0 + 2.0
    assert transfer.receive(ack(8), T0 + 1.1) == [data(n, content, 512) for n in range(9, 14)]
    transfer.receive(ack(13), T0 + 1.2)
    result = transfer.result
    assert result is not None and result.ok and result.retransmits == 1


def test_ack_for_a_block_not_sent_yet_is_ignored() -> None:
    content = content_of(5000)
    transfer = make_transfer(content, (("windowsize", "4"),))
    transfer.start(T0)
    transfer.receive(ack(0), T0)  # 1..4 out
    assert transfer.receive(ack(7), T0) == []
    assert transfer.receive(ack(4), T0) == [data(n, content, 512) for n in range(5, 9)]


# --- duplicates, timeouts, retries ---------------------------------------------------------------


def test_duplicate_ack_does_not_resend_no_sorcerers_apprentice() -> None:
    content = content_of(2000)
    transfer = make_transfer(content)
    transfer.start(T0)
    assert transfer.receive(ack(1), T0 + 0.1) == [data(2, content, 512)]
    # RFC 1123 4.2.3.1: a delayed duplicate of ACK 1 must not trigger a second DATA 2.
    assert transfer.receive(ack(1), T0 + 0.2) == []
    assert transfer.receive(ack(1), T0 + 0.3) == []
    # The timer is not pushed back by duplicates either.
    assert transfer.get_timer() == T0 + 1.1
    assert transfer.receive(ack(2), T0 + 0.4) == [data(3, content, 512)]
    result_so_far = transfer.receive(ack(0), T0 + 0.5)  # very old: ignored
    assert result_so_far == []


def test_duplicate_ack_of_oack_is_ignored() -> None:
    content = content_of(100)
    transfer = make_transfer(content, (("tsize", "0"),))
    transfer.start(T0)
    assert transfer.receive(ack(0), T0) == [data(1, content, 512)]
    assert transfer.receive(ack(0), T0) == []


def test_lost_oack_is_retransmitted() -> None:
    transfer = make_transfer(content_of(10), (("blksize", "1024"),))
    oack = transfer.start(T0)
    assert transfer.handle_timer(T0 + 1.0) == oack


def test_negotiated_timeout_sets_the_retransmit_interval() -> None:
    transfer = make_transfer(content_of(10), (("timeout", "3"),))
    transfer.start(T0)
    assert transfer.get_timer() == T0 + 3.0
    assert transfer.handle_timer(T0 + 2.9) == []


def test_retransmits_then_gives_up_after_max_retries() -> None:
    content = content_of(2000)
    transfer = make_transfer(content, limits=TransferLimits(max_retransmits=3))
    transfer.start(T0)
    transfer.receive(ack(1), T0)
    now = T0
    for _ in range(3):
        timer = transfer.get_timer()
        assert timer is not None and timer == now + 1.0
        now = timer
        assert transfer.handle_timer(now) == [data(2, content, 512)]
    timer = transfer.get_timer()
    assert timer is not None
    assert transfer.handle_timer(timer) == [encode_error(0, "timed out")]
    assert transfer.done and transfer.get_timer() is None
    result = transfer.result
    assert result is not None
    assert result.outcome is Outcome.TIMED_OUT
    assert result.reason == "no ACK for block 2 after 3 retransmits"
    assert result.retransmits == 3
    assert result.bytes_acknowledged == 512
    assert result.bytes_sent == 512 * 5


def test_progress_resets_the_retry_budget() -> None:
    content = content_of(2000)
    transfer = make_transfer(content, limits=TransferLimits(max_retransmits=1))
    transfer.start(T0)
    assert transfer.handle_timer(T0 + 1) == [data(1, content, 512)]
    assert transfer.receive(ack(1), T0 + 1.5) == [data(2, content, 512)]
    assert transfer.handle_timer(T0 + 2.5) == [data(2, content, 512)]
    assert not transfer.done
    assert transfer.receive(ack(2), T0 + 3) == [data(3, content, 512)]


# --- the client ends it, or misbehaves -----------------------------------------------------------


def test_client_error_aborts_without_a_reply() -> None:
    # PXE ROMs often ask for tsize, read the OACK, and abort to re-request with a blksize.
    transfer = make_transfer(content_of(100), (("tsize", "0"),))
    transfer.start(T0)
    assert transfer.receive(encode_error(8, "tsize probe"), T0) == []
    result = transfer.result
    assert result is not None
    assert result.outcome is Outcome.CLIENT_ERROR
    assert result.reason == "client sent ERROR 8: 'tsize probe'"
    assert transfer.get_timer() is None


def test_malformed_client_error_still_ends_the_transfer_silently() -> None:
    transfer = make_transfer(content_of(100))
    transfer.start(T0)
    assert transfer.receive(b"\x00\x05\x00", T0) == []
    assert transfer.result is not None and transfer.result.outcome is Outcome.CLIENT_ERROR


@pytest.mark.parametrize(
    "packet",
    [
        encode_data(1, b"x"),
        b"\x00\x01f\x00octet\x00",
        b"\x00\x06",
        b"\x00\x04\x00",  # a malformed ACK
        b"\x00\x09",
    ],
)
def test_anything_but_ack_or_error_is_answered_with_error_4(packet: bytes) -> None:
    transfer = make_transfer(content_of(100))
    transfer.start(T0)
    assert transfer.receive(packet, T0) == [encode_error(4, "illegal TFTP operation")]
    assert transfer.result is not None and transfer.result.outcome is Outcome.PROTOCOL_ERROR


def test_late_packets_and_timers_after_the_end_are_ignored() -> None:
    transfer = make_transfer(b"abc")
    transfer.start(T0)
    transfer.receive(ack(1), T0)
    assert transfer.receive(ack(1), T0 + 1) == []
    assert transfer.receive(b"garbage", T0 + 1) == []
    assert transfer.handle_timer(T0 + 5) == []
    assert transfer.abort() == []
    assert transfer.result is not None and transfer.result.ok


def test_abort_tells_the_client() -> None:
    transfer = make_transfer(content_of(5000))
    transfer.start(T0)
    assert transfer.abort("server shutting down") == [encode_error(0, "server shutting down")]
    assert transfer.result is not None and transfer.result.outcome is Outcome.ABORTED


def test_actions_out_of_order_raise_an_error_naming_state_and_action() -> None:
    transfer = make_transfer(b"abc")
    with pytest.raises(TransferStateError, match="cannot receive a transfer in state 'idle'"):
        transfer.receive(ack(1), T0)
    with pytest.raises(TransferStateError, match=r"handle_timer.*'idle'"):
        transfer.handle_timer(T0)
    assert transfer.get_timer() is None
    transfer.start(T0)
    with pytest.raises(TransferStateError, match="cannot start a transfer in state 'sending'"):
        transfer.start(T0)


def test_unknown_tid_error_packet() -> None:
    assert unknown_tid_error() == b"\x00\x05\x00\x05unknown transfer ID\x00"


# --- the data source -----------------------------------------------------------------------------


def _broken_transfer(source: BrokenSource, size: int) -> ReadTransfer:
    limits = TransferLimits()
    request = RRQ("f", "octet")
    return ReadTransfer(request, negotiate_options((), size, limits), size, source, limits)


def test_read_error_fails_the_transfer_with_error_0() -> None:
    transfer = _broken_transfer(BrokenSource(fail_at=512), 2000)
    assert len(transfer.start(T0)) == 1
    assert transfer.receive(ack(1), T0) == [encode_error(0, "error reading file")]
    result = transfer.result
    assert result is not None and result.outcome is Outcome.SOURCE_ERROR
    assert "Input/output error" in result.reason


def test_short_read_is_never_sent_as_data() -> None:
    transfer = _broken_transfer(BrokenSource(fail_at=0, short=True), 2000)
    assert transfer.start(T0) == [encode_error(0, "error reading file")]
    result = transfer.result
    assert result is not None and "file changed while being sent" in result.reason


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        _broken_transfer(BrokenSource(fail_at=0), -1)


# --- block number rollover -----------------------------------------------------------------------


def test_block_numbers_roll_over_from_65535_to_0() -> None:
    blksize, window = 8, 64
    blocks = 65536 + 70  # past the wrap, and then some
    content = content_of(blksize * (blocks - 1) + 3)
    transfer = make_transfer(
        content,
        (("blksize", str(blksize)), ("windowsize", str(window))),
        TransferLimits(max_windowsize=window),
    )
    transfer.start(T0)
    received = bytearray()
    seen_numbers: list[int] = []
    outgoing = transfer.receive(ack(0), T0)
    while outgoing:
        last = 0
        for datagram in outgoing:
            packet = parse_packet(datagram)
            assert isinstance(packet, DATA)
            seen_numbers.append(packet.block)
            received += packet.data
            last = packet.block
        outgoing = transfer.receive(encode_ack(last), T0)
    assert bytes(received) == content
    assert len(seen_numbers) == blocks
    assert seen_numbers[65534:65537] == [65535, 0, 1]
    assert transfer.result is not None and transfer.result.ok
