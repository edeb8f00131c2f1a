"""How many requests one address may make without a credential: a token bucket per address.

Anyone on the provisioning network can call the machine-facing port; each unauthenticated
request may cost a database row (a boot step event, an unknown MAC's token) or a file read.
A bucket per source address holds `burst` tokens and refills at `rate` a second; a request
takes one or is refused. Memory is bounded: at most `max_sources` buckets, the least recently
used one dropped first (a dropped address starts again with a full bucket, which only helps
it). Time is an argument.
"""

from __future__ import annotations

from collections import OrderedDict


class SourceLimiter:
    def __init__(self, rate: float, burst: int, max_sources: int = 65_536) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._max = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, source: str, now: float) -> bool:
        if not self.enabled:
            return True
        tokens, at = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, source: str) -> float:
        """Seconds until `source` may ask again."""
        tokens, _ = self._buckets.get(source, (self.burst, 0.0))
        return max(0.0, (1.0 - tokens) / self.rate) if self.enabled else 0.0
