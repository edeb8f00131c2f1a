"""Option negotiation: what each option becomes in the OACK, and what is left out."""

from __future__ import annotations

import pytest

from edgebox.wire.tftp import NegotiatedOptions, TransferLimits, negotiate_options

LIMITS = TransferLimits(max_blksize=1468, max_windowsize=16, default_timeout=1.0)


def negotiate(*options: tuple[str, str], size: int = 1000) -> NegotiatedOptions:
    return negotiate_options(tuple(options), size, LIMITS)


def test_no_options_means_rfc1350_defaults_and_no_oack() -> None:
    result = negotiate()
    assert result == NegotiatedOptions(blksize=512, windowsize=1, timeout=1.0, accepted=())
    assert not result.send_oack


def test_all_four_options_accepted_in_client_order() -> None:
    result = negotiate(("tsize", "0"), ("blksize", "1432"), ("timeout", "3"), ("windowsize", "4"))
    assert result.accepted == (
        ("tsize", "1000"),
        ("blksize", "1432"),
        ("timeout", "3"),
        ("windowsize", "4"),
    )
    assert (result.blksize, result.windowsize, result.timeout) == (1432, 4, 3.0)
    assert result.send_oack


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8", "8"),  # RFC 2348 minimum
        ("512", "512"),
        ("1468", "1468"),
        ("1469", "1468"),  # above the server's limit: the server answers with its max
        ("65464", "1468"),  # RFC 2348 maximum, still clamped to the server's limit
        ("7", None),  # below RFC 2348's range: ignored
        ("65465", None),  # above RFC 2348's range: ignored
        ("0", None),
        ("", None),
        ("abc", None),
        ("+512", None),
        (" 512", None),
        ("0x200", None),
        ("5" * 30, None),
    ],
)
def test_blksize(value: str, expected: str | None) -> None:
    result = negotiate(("blksize", value))
    if expected is None:
        assert result.accepted == ()
        assert result.blksize == 512
    else:
        assert result.accepted == (("blksize", expected),)
        assert result.blksize == int(expected)


def test_blksize_up_to_a_configured_jumbo_limit() -> None:
    limits = TransferLimits(max_blksize=8972)
    result = negotiate_options((("blksize", "9000"),), 10, limits)
    assert result.accepted == (("blksize", "8972"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", "1"),
        ("8", "8"),
        ("16", "16"),
        ("64", "16"),
        ("65535", "16"),
        ("0", None),
        ("65536", None),
        ("-1", None),
    ],
)
def test_windowsize(value: str, expected: str | None) -> None:
    result = negotiate(("windowsize", value))
    if expected is None:
        assert result.accepted == ()
        assert result.windowsize == 1
    else:
        assert result.accepted == (("windowsize", expected),)
        assert result.windowsize == int(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", "1"),
        ("10", "10"),
        ("11", None),
        ("255", None),
        ("0", None),
        ("256", None),
        ("1.5", None),
    ],
)
def test_timeout_is_echoed_unchanged_or_ignored(value: str, expected: str | None) -> None:
    result = negotiate(("timeout", value))
    if expected is None:
        assert result.accepted == ()
        assert result.timeout == LIMITS.default_timeout
    else:
        assert result.accepted == (("timeout", expected),)
        assert result.timeout == float(expected)


def test_timeout_up_to_255_with_a_generous_limit() -> None:
    limits = TransferLimits(max_timeout=255)
    assert negotiate_options((("timeout", "255"),), 1, limits).accepted == (("timeout", "255"),)


def test_tsize_is_answered_with_the_real_size() -> None:
    assert negotiate(("tsize", "0"), size=123456).accepted == (("tsize", "123456"),)
    assert negotiate(("tsize", "0"), size=0).accepted == (("tsize", "0"),)
    assert negotiate(("tsize", "x")).accepted == ()


def test_unknown_options_are_ignored_not_echoed() -> None:
    result = negotiate(("multicast", ""), ("blksize", "1024"), ("x-vendor", "1"))
    assert result.accepted == (("blksize", "1024"),)


def test_option_names_are_matched_case_insensitively() -> None:
    assert negotiate(("BLKSIZE", "1024")).accepted == (("blksize", "1024"),)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_blksize": 7},
        {"max_blksize": 65465},
        {"max_windowsize": 0},
        {"max_windowsize": 65536},
        {"default_timeout": 0},
        {"max_timeout": 0},
        {"max_timeout": 256},
        {"max_retransmits": -1},
    ],
)
def test_limits_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TransferLimits(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"blksize": 7}, {"windowsize": 65536}, {"windowsize": 0}, {"timeout": 0.0}]
)
def test_negotiated_options_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        NegotiatedOptions(**kwargs)  # type: ignore[arg-type]
