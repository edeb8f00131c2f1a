"""A token bucket per source address, with bounded memory."""

from __future__ import annotations

from edgebox.domain.rate_limit import SourceLimiter


def test_a_burst_then_the_rate() -> None:
    limiter = SourceLimiter(rate=2.0, burst=3)
    assert [limiter.allow("10.0.0.9", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after("10.0.0.9") == 0.5
    assert not limiter.allow("10.0.0.9", 0.4)
    assert limiter.allow("10.0.0.9", 1.0)  # 1 s at 2/s refilled two, one taken
    assert limiter.allow("10.0.0.9", 1.0) and not limiter.allow("10.0.0.9", 1.0)
    # Another address has a bucket of its own.
    assert limiter.allow("10.0.0.10", 1.0)


def test_memory_is_bounded_and_off_means_off() -> None:
    limiter = SourceLimiter(rate=1.0, burst=1, max_sources=2)
    for source in ("a", "b", "c"):
        assert limiter.allow(source, 0.0)
    assert limiter.allow("a", 0.0)  # forgotten (least recently used): a full bucket again
    assert not limiter.allow("c", 0.0)
    off = SourceLimiter(rate=0.0, burst=1)
    assert not off.enabled and all(off.allow("x", 0.0) for _ in range(1000))
