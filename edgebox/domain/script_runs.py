"""Runs of scripts on a machine: which scripts a run holds, one result per device, and the
environment each script gets.

A commissioning run holds every commissioning script (the inventory script first) and then
the chosen testing scripts; a test run holds the chosen testing scripts only. A script with a
storage or interface parameter runs once per disk or NIC of the machine's inventory. Which
disks a machine has is known for sure only once it has booted, so such a script is planned as
one `expand` placeholder and expanded when the agent asks for its plan: the agent enlists
first, so the inventory is this boot's (or, once commissioned, the commissioned one).

Everything here is a pure decision over plain records; the store carries it out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from edgebox.domain.errors import InvalidInput
from edgebox.domain.lifecycle import Status
from edgebox.domain.script_metadata import (
    PER_DEVICE,
    ParameterSpec,
    ParamType,
    ScriptMetadata,
    ScriptType,
    fits_type,
)
from edgebox.domain.script_results import ResultStatus

INVENTORY_SCRIPT: Final = "edgebox-inventory"
MAX_STRING_PARAMETER: Final = 4096  # characters; it goes into the script's environment


class RunKind(enum.StrEnum):
    COMMISSIONING = "commissioning"
    TESTING = "testing"


class RunState(enum.StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class StoredScript:
    """One version of a script, as stored (without its content)."""

    id: int
    name: str
    version: int
    metadata: ScriptMetadata
    builtin: bool
    sha256: str
    created_at: float
    created_by: str

    @property
    def type(self) -> ScriptType:
        return self.metadata.type


@dataclass(frozen=True, slots=True)
class PlannedResult:
    script_id: int
    name: str
    version: int
    timeout: int
    parallel: str
    expand: ParamType | None = None  # a placeholder, expanded per device later
    device: str = ""
    interface: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    status: ResultStatus = ResultStatus.PENDING
    note: str = ""


@dataclass(frozen=True, slots=True)
class ScriptRun:
    id: int
    machine_id: int
    kind: RunKind
    state: RunState
    requested_by: str
    created_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class ScriptResult:
    id: int
    run_id: int
    machine_id: int
    script_id: int
    name: str
    version: int
    position: int
    expand: str
    device: str
    interface: str
    parameters: Mapping[str, Any]
    timeout: int
    parallel: str
    status: ResultStatus
    reported_status: ResultStatus | None
    exit_code: int | None
    runtime: float | None
    results: Mapping[str, Any]
    note: str
    started_at: float | None
    finished_at: float | None
    boot: str = ""  # which boot of the machine started it (a hash of that boot's token)


@dataclass(frozen=True, slots=True)
class RunChoice:
    """The scripts of a run, in the order they are to start."""

    commissioning: tuple[StoredScript, ...]
    tests: tuple[StoredScript, ...]

    @property
    def names(self) -> list[str]:
        return [s.name for s in (*self.commissioning, *self.tests)]


def choose_scripts(
    kind: RunKind,
    available: Sequence[StoredScript],
    tests: Sequence[str] | None,
    default_tests: Sequence[str],
    status: Status,
) -> RunChoice:
    """Pick the run's scripts from the current versions of all scripts.

    `tests` None means the default: for commissioning, `default_tests` (configured); for a
    test run, every built-in testing script that is not destructive. A destructive test is
    refused on a deployed machine (it would destroy the workload's data).
    """
    by_name = {s.name: s for s in available}
    if tests is None:
        if kind is RunKind.COMMISSIONING:
            names = [n for n in default_tests if n in by_name]
        else:
            names = sorted(
                s.name
                for s in available
                if s.type is ScriptType.TESTING and s.builtin and not s.metadata.destructive
            )
    else:
        names = list(dict.fromkeys(tests))
    chosen = []
    for name in names:
        script = by_name.get(name)
        if script is None:
            raise InvalidInput("tests", f"no script named {name!r}")
        if script.type is not ScriptType.TESTING:
            raise InvalidInput("tests", f"{name} is a {script.type.value} script, not a test")
        if script.metadata.destructive and status is Status.DEPLOYED:
            raise InvalidInput(
                "tests", f"{name} is destructive and the machine is deployed: release it first"
            )
        chosen.append(script)
    commissioning: list[StoredScript] = []
    if kind is RunKind.COMMISSIONING:
        commissioning = sorted(
            (s for s in available if s.type is ScriptType.COMMISSIONING),
            key=lambda s: (s.name != INVENTORY_SCRIPT, s.name),
        )
    if not commissioning and not chosen:
        raise InvalidInput("tests", "nothing to run: no scripts were chosen")
    return RunChoice(tuple(commissioning), tuple(chosen))


def plan_run(
    choice: RunChoice, parameters: Mapping[str, Mapping[str, Any]] | None = None
) -> list[PlannedResult]:
    """The results of a run; per-device scripts as placeholders (see `expand`).

    `parameters` sets script parameters for this run, by script name then parameter name;
    what it leaves out keeps the metadata's default.
    """
    given = parameters or {}
    for name in given:
        if name not in choice.names:
            raise InvalidInput(
                f"parameters.{name}",
                f"{name} is not a script of this run (it runs: {', '.join(choice.names)})",
            )
    planned: list[PlannedResult] = []
    for script in (*choice.commissioning, *choice.tests):
        meta = script.metadata
        device = meta.per_device
        planned.append(
            PlannedResult(
                script.id,
                script.name,
                script.version,
                meta.timeout,
                meta.parallel.value,
                expand=device.type if device is not None else None,
                parameters=script_parameters(meta, given.get(script.name, {})),
            )
        )
    return planned


def script_parameters(meta: ScriptMetadata, given: Mapping[str, Any]) -> dict[str, Any]:
    """A script's parameters for one run: the defaults, with what the request gives checked
    against the metadata (a known name, its type, min..max) and put over them."""
    values = _defaults(meta)
    specs = {p.name: p for p in meta.parameters}
    for name, value in given.items():
        path = f"parameters.{meta.name}.{name}"
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            raise InvalidInput(path, f"{meta.name} has no parameter {name!r} (it has: {known})")
        if spec.type in PER_DEVICE:
            raise InvalidInput(
                path, f"a {spec.type.value} parameter is filled in per device by edgebox"
            )
        values[name] = parameter_value(spec, value, path)
    return values


def parameter_value(spec: ParameterSpec, value: object, path: str) -> str | int | float | bool:
    """`value` as the parameter's type, or `InvalidInput` naming `path`."""
    if not fits_type(spec.type, value) or (isinstance(value, float) and not math.isfinite(value)):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        article = "an" if spec.type is ParamType.INT else "a"
        raise InvalidInput(path, f"expected {article} {spec.type.value} value, got {shown}")
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_PARAMETER or "\0" in value:
            raise InvalidInput(
                path, f"a text of at most {MAX_STRING_PARAMETER} characters, without NUL"
            )
        return value
    assert isinstance(value, int | float)
    number = float(value) if spec.type is ParamType.FLOAT else value
    if (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
        low = "" if spec.min is None else f"{spec.min:g}"
        high = "" if spec.max is None else f"{spec.max:g}"
        raise InvalidInput(path, f"{number:g} is outside {low}..{high}")
    return number


def expand(template: PlannedResult, inventory: Mapping[str, Any] | None) -> list[PlannedResult]:
    """One result per disk or NIC of the inventory; a skipped one when it has none."""
    assert template.expand is not None
    storage = template.expand is ParamType.STORAGE
    what = "disks" if storage else "nics"
    if inventory is None:
        return [
            replace(
                template,
                expand=None,
                status=ResultStatus.SKIPPED,
                note=f"no inventory of {what} yet: commission the machine first",
            )
        ]
    names = device_names(inventory, what)
    if not names:
        return [
            replace(
                template,
                expand=None,
                status=ResultStatus.SKIPPED,
                note=f"the inventory lists no {what}",
            )
        ]
    if storage:
        return [replace(template, expand=None, device=name) for name in names]
    return [replace(template, expand=None, interface=name) for name in names]


def device_names(inventory: Mapping[str, Any], what: str) -> list[str]:
    items = inventory.get(what)
    if not isinstance(items, list):
        return []
    names = []
    for item in items:
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name and "/" not in name and name not in names:
            names.append(name)
    return names


def _defaults(meta: ScriptMetadata) -> dict[str, Any]:
    return {
        p.name: p.default
        for p in meta.parameters
        if p.type not in (ParamType.STORAGE, ParamType.INTERFACE) and p.default is not None
    }


# -- the environment a script runs in ---------------------------------------------------------


def shell_quote(value: str) -> str:
    """Single-quote for POSIX sh: the only character to escape inside '...' is ' itself."""
    return "'" + value.replace("'", "'\\''") + "'"


def env_lines(
    result_id: int,
    metadata: ScriptMetadata,
    device: str,
    interface: str,
    parameters: Mapping[str, Any],
) -> str:
    """`export NAME='value'` lines for the agent to source before it runs the script."""
    values: dict[str, str] = {
        "EDGEBOX_RESULT_ID": str(result_id),
        "EDGEBOX_SCRIPT_NAME": metadata.name,
        "EDGEBOX_TIMEOUT": str(metadata.timeout),
    }
    if device:
        values["EDGEBOX_DEVICE"] = f"/dev/{device}"
    if interface:
        values["EDGEBOX_INTERFACE"] = interface
    for name, value in parameters.items():
        values[f"EDGEBOX_PARAM_{name.upper()}"] = _env_text(value)
    return "".join(f"export {name}={shell_quote(text)}\n" for name, text in values.items())


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\0", "")
