"""SendPacer: at most `per_window` datagrams a window, in order, nothing lost below the cap."""

from __future__ import annotations

import asyncio

from edgebox.net.send_pacer import SendPacer

TO = ("10.0.0.1", 67)


async def test_a_burst_leaves_a_window_at_a_time_in_order() -> None:
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, bytes]] = []
    pacer = SendPacer(lambda data, to: sent.append((loop.time(), data)), per_window=4, window=0.05)
    started = loop.time()
    for i in range(10):
        pacer.send(b"%d" % i, TO)
    assert [data for _, data in sent] == [b"0", b"1", b"2", b"3"]  # the rest waits
    async with asyncio.timeout(5):
        while len(sent) < 10:  # noqa: ASYNC110 (nothing to wait on but time)
            await asyncio.sleep(0.01)
    assert [data for _, data in sent] == [b"%d" % i for i in range(10)]
    # Three windows: the 5th datagram waited for the second, the 9th for the third.
    assert sent[4][0] - started >= 0.045 and sent[8][0] - started >= 0.095


async def test_below_the_rate_nothing_waits() -> None:
    sent: list[bytes] = []
    pacer = SendPacer(lambda data, to: sent.append(data), per_window=4, window=0.01)
    for i in range(6):
        pacer.send(b"%d" % i, TO)
        await asyncio.sleep(0.006)  # 2 per window at most
        assert len(sent) == i + 1


async def test_past_the_cap_it_drops_and_close_forgets_the_rest() -> None:
    sent: list[bytes] = []
    pacer = SendPacer(lambda data, to: sent.append(data), per_window=1, window=10, max_queued=3)
    for i in range(6):
        pacer.send(b"%d" % i, TO)
    assert sent == [b"0"] and pacer.dropped == 2
    pacer.close()
    await asyncio.sleep(0.02)
    assert sent == [b"0"]
