"""kill -9 in the middle of a burst of creations loses no machine whose create returned 201."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.integration.daemon import running, write_config

BURST = 1000
KILL_AFTER = 400
CONCURRENCY = 32


async def _burst(url: str, token: str, kill: asyncio.Event) -> tuple[list[str], int]:
    created: list[str] = []
    failed = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(BURST):
        queue.put_nowait(i)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            mac = f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
            try:
                async with session.post(
                    f"{url}/api/v1/machines", json={"mac": mac}, headers=headers
                ) as resp:
                    if resp.status == 201:
                        created.append((await resp.json())["system_id"])
                        if len(created) == KILL_AFTER:
                            kill.set()
                    else:
                        failed += 1
            except (TimeoutError, aiohttp.ClientError):
                failed += 1

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return created, failed


async def _all_machines(url: str, token: str) -> set[str]:
    seen: set[str] = set()
    headers = {"Authorization": f"Bearer {token}"}
    after = "0"
    async with aiohttp.ClientSession() as session:
        while after:
            async with session.get(
                f"{url}/api/v1/machines?limit=1000&after={after}", headers=headers
            ) as resp:
                page = await resp.json()
            seen.update(m["system_id"] for m in page["items"])
            after = page["next"]
    return seen


@pytest.mark.slow
def test_kill_9_during_a_burst_loses_no_acknowledged_machine(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with running(config) as daemon:
        token = daemon.admin_token
        assert token

        async def scenario() -> tuple[list[str], int]:
            kill = asyncio.Event()

            async def killer() -> None:
                await kill.wait()
                daemon.proc.send_signal(signal.SIGKILL)

            kill_task = asyncio.create_task(killer())
            created, failed = await _burst(daemon.api_url, token, kill)
            kill.set()
            await kill_task
            return created, failed

        created, failed = asyncio.run(scenario())
        assert daemon.proc.wait(10) == -signal.SIGKILL
    # The kill landed mid-burst: some creations were acknowledged, some never were.
    assert len(created) >= KILL_AFTER and failed > 0, (len(created), failed)
    with running(config, name="after-crash") as again:
        present = asyncio.run(_all_machines(again.api_url, token))
        again.stop()
    missing = set(created) - present
    assert not missing, f"{len(missing)} acknowledged machines lost"
    print(f"acknowledged={len(created)} failed={failed} present_after_restart={len(present)}")
