"""AckRelease: a burst at once, then `rate` a second, in order; time the loop spent elsewhere
still earns tokens, so a late loop never falls behind."""

from __future__ import annotations

import asyncio
import time

from edgebox.net.ack_release import AckRelease


async def test_a_burst_goes_at_once_and_the_rest_at_the_rate() -> None:
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, int]] = []
    release = AckRelease(lambda i: sent.append((loop.time(), i)), rate=200.0, burst=5)
    started = loop.time()
    release.add(range(15))
    assert [i for _, i in sent] == [0, 1, 2, 3, 4] and len(release) == 10
    async with asyncio.timeout(5):
        while len(sent) < 15:  # noqa: ASYNC110 (nothing to wait on but time)
            await asyncio.sleep(0.005)
    assert [i for _, i in sent] == list(range(15))
    # 10 more at 200 a second take at least 50 ms: the rate holds, give or take a token.
    assert sent[-1][0] - started >= 0.045


async def test_time_spent_elsewhere_earns_tokens_up_to_the_burst() -> None:
    sent: list[int] = []
    release = AckRelease(sent.append, rate=1000.0, burst=20)
    release.add(range(20))  # the whole burst
    time.sleep(0.05)  # noqa: ASYNC251 (the loop is busy elsewhere: 50 tokens earned, 20 kept)
    release.add(range(20, 60))
    assert sent == list(range(40))  # 20 more at once, none of them waiting for a timer


async def test_close_forgets_what_waits() -> None:
    sent: list[int] = []
    release = AckRelease(sent.append, rate=10.0, burst=2)
    release.add(range(5))
    release.close()
    await asyncio.sleep(0.3)
    assert sent == [0, 1] and len(release) == 0
