"""The machine's side of commissioning and testing: the calls of docs/commissioning-contract.md §1.

An agent, authenticated by its per-boot token, asks for its plan, fetches each script and its
environment, marks it started, uploads its output and result file, and reports it done. Each
call is cheap by design (1,000 agents on two cores): a result is read by primary key, a script's
content and metadata never change for a given id and are cached, every change is one small
write job of the group-committing writer, and signs of life stay in memory (the watchdog).

The last `done` of a run ends it in the same transaction: any failed, timed-out or aborted
result makes the machine Failed commissioning / Failed testing, otherwise it goes Ready (or
back to where a test started). The inventory script's output is parsed into the normalized
inventory (`parse_bundle`), stored, and the machine's automatic tags are evaluated again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from edgebox.domain.errors import NotFound
from edgebox.domain.lifecycle import Status
from edgebox.domain.run_endings import conclude_run
from edgebox.domain.script_metadata import ParamType, ScriptMetadata
from edgebox.domain.script_results import (
    GPU_PRESENCE,
    ResultFileError,
    ResultStatus,
    check_gpu_presence,
    verdict,
)
from edgebox.domain.script_runs import (
    INVENTORY_SCRIPT,
    PlannedResult,
    ScriptResult,
    env_lines,
    expand,
)
from edgebox.services.boot_service import AgentAuthError, AgentCall, AgentInputError
from edgebox.services.commissioning_watchdog import CommissioningWatchdog
from edgebox.services.script_yaml import read_result_file
from edgebox.storage.run_store import Finished, RunStore, Verdict
from edgebox.storage.script_store import ScriptStore

log = logging.getLogger(__name__)

STATUS_OF_PURPOSE: Final = {"commission": Status.COMMISSIONING, "test": Status.TESTING}
OUTPUT_LIMIT: Final = 4 * 1024 * 1024
RESULT_FILE_LIMIT: Final = 1024 * 1024
_CACHE_SIZE: Final = 512

InventoryParser = Callable[[str], dict[str, Any]]


def boot_id(token: str) -> str:
    """Which boot of a machine a call comes from: a short hash of that boot's token (every
    boot gets a new token, and a new one replaces the old)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class Retagger(Protocol):
    """What commissioning needs of the tag service."""

    async def retag_machine(self, system_id: str) -> Any: ...


class ScriptAgent:
    def __init__(
        self,
        *,
        runs: RunStore,
        scripts: ScriptStore,
        watchdog: CommissioningWatchdog,
        parse_inventory: InventoryParser,
        tags: Retagger | None = None,
    ) -> None:
        self._runs = runs
        self._scripts = scripts
        self._watchdog = watchdog
        self._parse_inventory = parse_inventory
        self.tags = tags
        self._content: OrderedDict[int, tuple[bytes, ScriptMetadata]] = OrderedDict()
        self._planned: dict[int, tuple[str, int]] = {}  # machine id -> (boot, run id)

    def serves(self, call: AgentCall) -> bool:
        return call.token.purpose in STATUS_OF_PURPOSE

    def check_serves(self, call: AgentCall) -> int:
        """The caller's machine id, or `AgentAuthError` if its boot is not to commission or
        test a known machine."""
        return self._machine_of(call)

    # -- the plan --------------------------------------------------------------------------

    async def plan(self, call: AgentCall, boot: str) -> str:
        """`RESULT_ID<TAB>PARALLEL<TAB>TIMEOUT_S<TAB>NAME` lines; empty: nothing to run."""
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        watch = self._watchdog.active(machine_id)
        status = await self._runs.machine_status(machine_id)
        if watch is None or status is None or status != STATUS_OF_PURPOSE[call.token.purpose]:
            return ""
        results = await self._runs.results(watch.run_id)
        stale = [r for r in results if r.status is ResultStatus.RUNNING and r.boot != boot]
        if stale:
            note = "started again: the machine booted again while it ran"
            requeued = await self._runs.requeue_other_boots(watch.run_id, boot, note)
            self._watchdog.finished(watch.run_id, requeued)
        if any(r.expand and r.status is ResultStatus.PENDING for r in results):
            ended = await self._runs.expand_placeholders(
                watch.run_id, machine_id, _expand_placeholder, conclude_run
            )
            if ended is not None:
                self._watchdog.forget(watch.run_id)
        self._planned[machine_id] = (boot, watch.run_id)
        lines = [
            f"{r.id}\t{r.parallel}\t{r.timeout}\t{r.name}\n"
            for r in await self._runs.plan(watch.run_id)
        ]
        return "".join(lines)

    # -- one result ------------------------------------------------------------------------

    async def script(self, call: AgentCall, result_id: int) -> bytes:
        result = await self._result(call, result_id)
        content, _ = await self._script(result.script_id)
        return content

    async def env(self, call: AgentCall, result_id: int) -> str:
        result = await self._result(call, result_id)
        _, metadata = await self._script(result.script_id)
        return env_lines(result.id, metadata, result.device, result.interface, result.parameters)

    async def start(self, call: AgentCall, boot: str, result_id: int) -> None:
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        result = await self._runs.start_result(result_id, machine_id, boot)
        self._watchdog.started(result.run_id, result.id, result.timeout)

    async def output(
        self, call: AgentCall, result_id: int, stream: str, data: bytes, size: int
    ) -> None:
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        await self._runs.put_output(result_id, machine_id, stream, data, size)

    async def result_file(self, call: AgentCall, result_id: int, raw: bytes) -> None:
        """The script's result file; a malformed one fails the result, with the reason."""
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        try:
            # On a thread: a megabyte of YAML takes a while to compose and check, and the loop
            # serves every other agent meanwhile.
            reported = await asyncio.to_thread(read_result_file, raw)
        except ResultFileError as exc:
            await self._runs.put_result_file(
                result_id, machine_id, raw=raw, reported=ResultStatus.FAILED, results={},
                note=f"the result file is not valid: {exc}",
            )  # fmt: skip
            return
        await self._runs.put_result_file(
            result_id, machine_id, raw=raw, reported=reported.status, results=reported.results,
            note="",
        )  # fmt: skip

    async def done(self, call: AgentCall, result_id: int, body: Mapping[str, Any]) -> Finished:
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        exit_code, runtime, timed_out = _done_fields(body)
        result = await self._result(call, result_id)
        parsed: dict[str, Any] | None = None
        problem = ""
        if result.name == INVENTORY_SCRIPT and result.status is ResultStatus.RUNNING:
            parsed, problem = await self._inventory_of(result.id)

        def judge(current: ScriptResult, inventory: Callable[[], dict[str, Any] | None]) -> Verdict:
            status = verdict(exit_code, timed_out, current.reported_status)
            if current.name == INVENTORY_SCRIPT and status is ResultStatus.PASSED:
                if parsed is None:
                    return Verdict(ResultStatus.FAILED, problem)
                return Verdict(status, inventory=parsed)
            if current.name == GPU_PRESENCE:
                status, note = check_gpu_presence(status, current.results, _gpu_count(inventory()))
                return Verdict(status, note)
            return Verdict(status)

        finished = await self._runs.finish(
            result_id, machine_id, {"exit_code": exit_code, "runtime": runtime}, judge,
            conclude_run,
        )  # fmt: skip
        self._watchdog.finished(result.run_id, [result.id])
        if finished.run is not None:
            self._watchdog.forget(finished.run.id)
        if finished.inventory_stored and call.system_id is not None:
            await self._retag(call.system_id)
        return finished

    async def heartbeat(self, call: AgentCall, boot: str) -> dict[str, str]:
        """continue while the machine is in this boot's run; poweroff once it has left;
        reboot when it is in another run than the one this boot runs (a new commissioning
        or test was asked for meanwhile: booting again picks it up)."""
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        status = await self._runs.machine_status(machine_id)
        expected = STATUS_OF_PURPOSE[call.token.purpose]
        if status not in (Status.COMMISSIONING.value, Status.TESTING.value):
            return {"action": "poweroff"}
        watch = self._watchdog.active(machine_id)
        planned = self._planned.get(machine_id)
        if status != expected.value or (
            watch is not None and planned is not None and planned != (boot, watch.run_id)
        ):
            return {"action": "reboot"}
        return {"action": "continue"}

    # -- helpers -----------------------------------------------------------------------------

    def _machine_of(self, call: AgentCall) -> int:
        if call.token.machine_id is None or not self.serves(call):
            raise AgentAuthError(
                f"this boot token (purpose {call.token.purpose}) is not for commissioning or "
                "testing a known machine",
                forbidden=True,
            )
        return call.token.machine_id

    async def _result(self, call: AgentCall, result_id: int) -> ScriptResult:
        machine_id = self._machine_of(call)
        self._watchdog.touch(machine_id)
        result = await self._runs.result(result_id)
        if result is None or result.machine_id != machine_id:
            raise NotFound("result", f"{result_id} of this machine")
        return result

    async def _script(self, script_id: int) -> tuple[bytes, ScriptMetadata]:
        """A script version's content and metadata, which never change for its id."""
        cached = self._content.get(script_id)
        if cached is not None:
            self._content.move_to_end(script_id)
            return cached
        found = await self._scripts.by_id(script_id)
        if found is None:
            raise NotFound("script", str(script_id))
        script, text = found
        entry = (text.encode("utf-8", "surrogatepass"), script.metadata)
        self._content[script_id] = entry
        if len(self._content) > _CACHE_SIZE:
            self._content.popitem(last=False)
        return entry

    async def _inventory_of(self, result_id: int) -> tuple[dict[str, Any] | None, str]:
        """The normalized inventory from the inventory script's stdout, or why there is none.
        Parsed on a thread: a bundle is large, and the loop serves other agents meanwhile."""
        output = await self._runs.output(result_id)
        if "stdout" not in output:
            return None, "the inventory script sent no output (upload stdout before done)"
        text = output["stdout"][0].decode("utf-8", "replace")
        try:
            return await asyncio.to_thread(self._parse_inventory, text), ""
        except Exception as exc:  # a bundle edgebox cannot read fails the script, not edgebox
            log.warning("inventory bundle not parsed result=%d error=%s", result_id, exc)
            return None, f"the inventory bundle could not be parsed: {exc}"

    async def _retag(self, system_id: str) -> None:
        if self.tags is None:
            return
        try:
            await self.tags.retag_machine(system_id)
        except Exception:  # tags are derived data: a failure is logged, commissioning stands
            log.exception("retagging failed system_id=%s", system_id)


def _expand_placeholder(
    placeholder: ScriptResult, inventory: dict[str, Any] | None
) -> list[PlannedResult]:
    template = PlannedResult(
        placeholder.script_id,
        placeholder.name,
        placeholder.version,
        placeholder.timeout,
        placeholder.parallel,
        expand=ParamType(placeholder.expand),
        parameters=placeholder.parameters,
    )
    return expand(template, inventory)


def _gpu_count(inventory: Mapping[str, Any] | None) -> int | None:
    """The GPUs of a commissioned inventory (None: an inventory without the `gpus` list)."""
    gpus = inventory.get("gpus") if inventory is not None else None
    return len(gpus) if isinstance(gpus, list) else None


def _done_fields(body: Mapping[str, Any]) -> tuple[int | None, float | None, bool]:
    exit_code = body.get("exit_code")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        raise AgentInputError(f"exit_code: expected an integer, got {exit_code!r}")
    runtime = body.get("runtime")
    if runtime is not None:
        if isinstance(runtime, bool) or not isinstance(runtime, int | float):
            raise AgentInputError(f"runtime: expected seconds, got {runtime!r}")
        if not math.isfinite(runtime) or runtime < 0:
            raise AgentInputError(f"runtime: expected seconds, got {runtime!r}")
        runtime = float(runtime)
    timed_out = body.get("timed_out", False)
    if not isinstance(timed_out, bool):
        raise AgentInputError(f"timed_out: expected true or false, got {timed_out!r}")
    return exit_code, runtime, timed_out
