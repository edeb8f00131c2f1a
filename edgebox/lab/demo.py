"""`edgebox lab up --demo`: the whole lifecycle, by itself, with the commands the README shows.

Once every VM has enlisted (and the lab has set its BMC), the demo runs, as a person would in
another terminal:

    edgebox commission --all --wait
    edgebox deploy --all --image tiny --wait
    edgebox release --all --erase quick --wait

each as its own process, with its progress on the lab's output; then it prints each machine's
timeline (every status it passed through, with seconds since the lab started, from the event
log) and the lab stops. The exit status is 0 only when every step succeeded and every machine
ended Ready.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from edgebox.lab.operator import LabApi
from edgebox.lab.vm import VmSpec

STEPS: tuple[tuple[str, ...], ...] = (
    ("commission", "--all", "--wait"),
    ("deploy", "--all", "--image", "tiny", "--wait"),
    ("release", "--all", "--erase", "quick", "--wait"),
)
ENLIST_TIMEOUT_S = 300.0
STEP_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True)
class Step:
    """One status a machine passed through, `at` seconds after the lab started."""

    at: float
    status: str


async def wait_for_enlistment(
    vms: Sequence[VmSpec], assigned: Mapping[str, str], wait_s: float = ENLIST_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + wait_s
    while len(assigned) < len(vms):
        if time.monotonic() > deadline:
            missing = ", ".join(vm.name for vm in vms if vm.name not in assigned)
            raise TimeoutError(f"not enlisted after {wait_s:.0f}s: {missing}")
        await asyncio.sleep(0.5)


async def run_step(args: Sequence[str], env: Mapping[str, str]) -> int:
    print(f"\nedgebox lab demo: $ edgebox {' '.join(args)}", flush=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgebox", *args, env=dict(env), stdin=asyncio.subprocess.DEVNULL
    )
    try:
        return await asyncio.wait_for(proc.wait(), STEP_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        print(f"edgebox lab demo: gave up after {STEP_TIMEOUT_S:.0f}s", flush=True)
        return 1


async def timeline(api: LabApi, system_id: str, since: float) -> list[Step]:
    """The statuses the machine passed through, from its events."""
    steps: list[Step] = []
    for event in await api.events(machine=system_id):
        data = event.get("data") or {}
        at = _epoch(str(event["time"])) - since
        if event["type"] == "machine.created":
            steps.append(Step(at, "new"))
        elif event["type"] == "machine.status" and data.get("to"):
            steps.append(Step(at, str(data["to"])))
    return steps


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def render_timeline(vm: VmSpec, system_id: str, steps: Sequence[Step]) -> str:
    head = f"{vm.name} ({vm.firmware}{', native PXE' if vm.native_pxe else ''}) {system_id}:"
    return head + "".join(f"\n    {s.at:7.1f}s  {s.status}" for s in steps)


async def run_demo(
    api: LabApi,
    vms: Sequence[VmSpec],
    assigned: Mapping[str, str],
    env: Mapping[str, str],
    started_at: float,
) -> int:
    """The demo's steps, then the timelines; 0 when all went well."""
    await wait_for_enlistment(vms, assigned)
    env = {**env, "EDGEBOX_URL": api.url, "EDGEBOX_TOKEN": api.token}
    failed = ""
    for args in STEPS:
        if await run_step(args, env) != 0:
            failed = f"edgebox {' '.join(args)} failed"
            break
    print("\nedgebox lab demo: each machine's timeline (seconds since the lab started)")
    ready = True
    for vm in vms:
        system_id = assigned[vm.name]
        steps = await timeline(api, system_id, started_at)
        print(render_timeline(vm, system_id, steps), flush=True)
        ready = ready and bool(steps) and steps[-1].status == "ready"
    if failed or not ready:
        print(f"edgebox lab demo: {failed or 'not every machine ended Ready'}", flush=True)
        return 1
    print("edgebox lab demo: done; every machine was commissioned, deployed and released")
    return 0
