"""The TFTP codec: exact bytes both ways, every refusal typed, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgebox.wire.tftp import (
    ACK,
    DATA,
    ERROR,
    OACK,
    RRQ,
    WRQ,
    ErrorCode,
    Packet,
    TftpParseError,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
    encode_packet,
    encode_request,
    parse_packet,
)

# An RRQ as iPXE and most PXE ROMs send it: filename, mode, blksize and tsize.
PXE_RRQ = b"\x00\x01undionly.kpxe\x00octet\x00blksize\x001432\x00tsize\x000\x00"


def test_parse_rrq_with_options() -> None:
    assert parse_packet(PXE_RRQ) == RRQ(
        "undionly.kpxe", "octet", (("blksize", "1432"), ("tsize", "0"))
    )


def test_option_names_and_mode_are_case_insensitive() -> None:
    packet = parse_packet(b"\x00\x01f\x00OCTET\x00BlkSize\x00512\x00")
    assert packet == RRQ("f", "octet", (("blksize", "512"),))
    assert isinstance(packet, RRQ)
    assert packet.option("BLKSIZE") == "512"
    assert packet.option("tsize") is None


def test_parse_wrq() -> None:
    assert parse_packet(b"\x00\x02up.bin\x00octet\x00") == WRQ("up.bin", "octet")


def test_trailing_nul_padding_after_options_is_accepted() -> None:
    assert parse_packet(b"\x00\x01f\x00octet\x00tsize\x000\x00\x00\x00") == RRQ(
        "f", "octet", (("tsize", "0"),)
    )


def test_parse_data_ack_error_oack() -> None:
    assert parse_packet(b"\x00\x03\x00\x07abc") == DATA(7, b"abc")
    assert parse_packet(b"\x00\x03\xff\xff") == DATA(65535, b"")
    assert parse_packet(b"\x00\x04\x01\x00") == ACK(256)
    assert parse_packet(b"\x00\x05\x00\x01nope\x00") == ERROR(1, "nope")
    assert parse_packet(b"\x00\x06blksize\x001468\x00") == OACK((("blksize", "1468"),))
    assert parse_packet(b"\x00\x06") == OACK(())


def test_error_message_is_read_leniently() -> None:
    # A client's ERROR must always parse, so its text need not be NUL-terminated or UTF-8.
    assert parse_packet(b"\x00\x05\x00\x08no tsize") == ERROR(8, "no tsize")
    assert parse_packet(b"\x00\x05\x00\x00\xff\x00junk") == ERROR(0, "\ufffd")
    assert parse_packet(b"\x00\x05\x00\x00") == ERROR(0, "")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "too short for an opcode"),
        (b"\x00", "too short for an opcode"),
        (b"\x00\x07", "unknown opcode 7"),
        (b"\x00\x00", "unknown opcode 0"),
        (b"\x00\x01file", "does not end with a NUL"),
        (b"\x00\x01file\x00", "no mode"),
        (b"\x00\x01file\x00binary\x00", "unknown transfer mode 'binary'"),
        (b"\x00\x01file\x00oct\xe9t\x00", "mode is not ASCII"),
        (b"\x00\x01\xff\xfe\x00octet\x00", "filename is not UTF-8"),
        (b"\x00\x01f\x00octet\x00blksize\x00", "option 'blksize' has no value"),
        (b"\x00\x01f\x00octet\x00\x00512\x00", "empty name"),
        (b"\x00\x01f\x00octet\x00tsize\x000\x00TSIZE\x000\x00", "repeats option 'tsize'"),
        (b"\x00\x01f\x00octet\x00bl\xffk\x001\x00", "option name is not ASCII"),
        (b"\x00\x03\x00", "DATA is too short"),
        (b"\x00\x04\x00", "ACK must be 4 bytes, got 3"),
        (b"\x00\x04\x00\x01\x00", "ACK must be 4 bytes, got 5"),
        (b"\x00\x05\x00", "ERROR is too short"),
        (b"\x00\x06blksize\x00512", "OACK does not end with a NUL"),
    ],
)
def test_malformed_packets_say_what_is_wrong(data: bytes, complaint: str) -> None:
    with pytest.raises(TftpParseError, match=complaint):
        parse_packet(data)


def test_encoders_produce_exact_bytes() -> None:
    assert encode_request(RRQ("a/b", "octet", (("tsize", "0"),))) == (
        b"\x00\x01a/b\x00octet\x00tsize\x000\x00"
    )
    assert encode_request(WRQ("x", "octet")) == b"\x00\x02x\x00octet\x00"
    assert encode_data(1, b"hi") == b"\x00\x03\x00\x01hi"
    assert encode_ack(65535) == b"\x00\x04\xff\xff"
    assert encode_error(ErrorCode.FILE_NOT_FOUND, "file not found") == (
        b"\x00\x05\x00\x01file not found\x00"
    )
    assert encode_oack((("blksize", "1468"), ("tsize", "9"))) == (
        b"\x00\x06blksize\x001468\x00tsize\x009\x00"
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_ack(65536),
        lambda: encode_data(-1, b""),
        lambda: encode_error(70000, "x"),
        lambda: encode_error(0, "a\0b"),
        lambda: encode_oack((("", "1"),)),
        lambda: encode_oack((("blksize", "ü"),)),
        lambda: encode_request(RRQ("a\0b", "octet")),
    ],
)
def test_encoders_refuse_values_that_cannot_be_sent(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()


# --- fuzzing ---------------------------------------------------------------------------------

_OPCODE_PREFIX = st.sampled_from([op.to_bytes(2, "big") for op in range(1, 7)])


@given(st.binary(max_size=80) | st.tuples(_OPCODE_PREFIX, st.binary(max_size=80)).map(b"".join))
def test_parser_raises_only_tftp_parse_error(data: bytes) -> None:
    try:
        packet = parse_packet(data)
    except TftpParseError:
        return
    # Whatever parses re-encodes to something that parses to the same packet.
    assert parse_packet(encode_packet(packet)) == packet


_NUL_FREE_ASCII = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=12
)
_OPTIONS = st.dictionaries(_NUL_FREE_ASCII.map(str.lower), _NUL_FREE_ASCII, max_size=4).map(
    lambda options: tuple(options.items())
)
_BLOCK = st.integers(0, 65535)
_PACKETS: st.SearchStrategy[Packet] = st.one_of(
    st.builds(
        RRQ,
        st.text(alphabet=st.characters(min_codepoint=1, exclude_categories=["Cs"]), max_size=20),
        st.sampled_from(["octet", "netascii", "mail"]),
        _OPTIONS,
    ),
    st.builds(WRQ, _NUL_FREE_ASCII, st.just("octet"), _OPTIONS),
    st.builds(DATA, _BLOCK, st.binary(max_size=64)),
    st.builds(ACK, _BLOCK),
    st.builds(
        ERROR,
        _BLOCK,
        st.text(alphabet=st.characters(min_codepoint=1, exclude_categories=["Cs"]), max_size=20),
    ),
    st.builds(OACK, _OPTIONS),
)


@given(_PACKETS)
def test_encode_then_parse_round_trips(packet: Packet) -> None:
    assert parse_packet(encode_packet(packet)) == packet
