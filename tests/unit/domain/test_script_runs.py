"""Which scripts a run holds, per-device expansion, the environment, and how a run ends."""

from __future__ import annotations

from typing import Any

import pytest

from edgebox.domain.errors import InvalidInput
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import Machine, PowerState
from edgebox.domain.run_endings import conclude_run, expire_run
from edgebox.domain.script_metadata import ParameterSpec, ParamType, ScriptMetadata, ScriptType
from edgebox.domain.script_results import ResultStatus
from edgebox.domain.script_runs import (
    RunKind,
    RunState,
    ScriptResult,
    ScriptRun,
    StoredScript,
    choose_scripts,
    env_lines,
    expand,
    parameter_value,
    plan_run,
    shell_quote,
)


def stored(name: str, type_: ScriptType, *, builtin: bool = True, **meta: Any) -> StoredScript:
    return StoredScript(
        id=hash(name) % 1000, name=name, version=1,
        metadata=ScriptMetadata(name=name, type=type_, **meta),
        builtin=builtin, sha256="", created_at=0.0, created_by="",
    )  # fmt: skip


T, C = ScriptType.TESTING, ScriptType.COMMISSIONING
DISK = (ParameterSpec("disk", ParamType.STORAGE),)
AVAILABLE = [
    stored("zz-bmc", C),
    stored("edgebox-inventory", C),
    stored("cpu", T),
    stored("disk", T, parameters=DISK, timeout=600),
    stored("wipe", T, destructive=True),
    stored("mine", T, builtin=False),
    stored("release-erase", ScriptType.RELEASE),
]


def names(kind: RunKind, tests: tuple[str, ...] | None, status: Status = Status.READY) -> list[str]:
    return choose_scripts(kind, AVAILABLE, tests, ("cpu",), status).names


def test_commissioning_runs_every_commissioning_script_inventory_first() -> None:
    assert names(RunKind.COMMISSIONING, None) == ["edgebox-inventory", "zz-bmc", "cpu"]
    assert names(RunKind.COMMISSIONING, ()) == ["edgebox-inventory", "zz-bmc"]
    assert names(RunKind.COMMISSIONING, ("mine", "disk", "mine")) == [
        "edgebox-inventory", "zz-bmc", "mine", "disk",
    ]  # fmt: skip


def test_testing_defaults_to_builtin_tests_that_destroy_nothing() -> None:
    assert names(RunKind.TESTING, None) == ["cpu", "disk"]
    assert names(RunKind.TESTING, ("wipe",)) == ["wipe"]
    with pytest.raises(InvalidInput, match="wipe is destructive and the machine is deployed"):
        names(RunKind.TESTING, ("wipe",), Status.DEPLOYED)
    with pytest.raises(InvalidInput, match="release-erase is a release script, not a test"):
        names(RunKind.TESTING, ("release-erase",))
    with pytest.raises(InvalidInput, match="nothing to run"):
        names(RunKind.TESTING, ())


def test_per_device_scripts_are_placeholders_until_expanded() -> None:
    choice = choose_scripts(RunKind.TESTING, AVAILABLE, ("disk", "cpu"), (), Status.READY)
    planned = plan_run(choice)
    assert [(p.name, p.expand) for p in planned] == [("disk", ParamType.STORAGE), ("cpu", None)]
    inventory = {"disks": [{"name": "sda"}, {"name": "nvme0n1"}, {"name": "sda"}, {"x": 1},
                           {"name": "../etc"}]}  # fmt: skip
    expanded = expand(planned[0], inventory)
    assert [(p.device, p.expand, p.timeout) for p in expanded] == [
        ("sda", None, 600), ("nvme0n1", None, 600),
    ]  # fmt: skip
    [none] = expand(planned[0], {"disks": []})
    assert (none.status, none.note) == (ResultStatus.SKIPPED, "the inventory lists no disks")
    [unknown] = expand(planned[0], None)
    assert unknown.status is ResultStatus.SKIPPED and "commission the machine first" in unknown.note


TUNED = (
    ParameterSpec("disk", ParamType.STORAGE),
    ParameterSpec("passes", ParamType.INT, 2, 1, 10),
    ParameterSpec("fraction", ParamType.FLOAT, 0.5, 0.01, 0.95),
    ParameterSpec("label", ParamType.STRING),
    ParameterSpec("quick", ParamType.BOOLEAN, False),
)
TUNABLE = [*AVAILABLE, stored("tuned", T, parameters=TUNED)]


def plan_with(parameters: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    choice = choose_scripts(RunKind.TESTING, TUNABLE, ("tuned", "cpu"), (), Status.READY)
    return {p.name: dict(p.parameters) for p in plan_run(choice, parameters)}


def test_a_request_sets_parameters_over_the_defaults() -> None:
    assert plan_with({}) == {"tuned": {"passes": 2, "fraction": 0.5, "quick": False}, "cpu": {}}
    given = {"tuned": {"passes": 10, "fraction": 0.95, "label": "rack 3", "quick": True}}
    assert plan_with(given)["tuned"] == {
        "passes": 10, "fraction": 0.95, "label": "rack 3", "quick": True,
    }  # fmt: skip
    assert plan_with({"tuned": {"fraction": 0.25}})["tuned"]["passes"] == 2  # others: defaults
    whole = plan_with({"tuned": {"passes": 3}})["tuned"]["passes"]
    assert whole == 3 and isinstance(whole, int)
    ranged = ParameterSpec("f", ParamType.FLOAT, None, 0, 2)
    assert parameter_value(ranged, 1, "p") == 1.0
    assert isinstance(parameter_value(ranged, 1, "p"), float)
    # A per-device placeholder carries the parameters to every device it expands to.
    choice = choose_scripts(RunKind.TESTING, TUNABLE, ("tuned",), (), Status.READY)
    (placeholder,) = plan_run(choice, {"tuned": {"passes": 4}})
    expanded = expand(placeholder, {"disks": [{"name": "sda"}, {"name": "sdb"}]})
    assert [(p.device, p.parameters["passes"]) for p in expanded] == [("sda", 4), ("sdb", 4)]
    assert "export EDGEBOX_PARAM_PASSES='4'" in env_lines(
        1, TUNABLE[-1].metadata, "sda", "", expanded[0].parameters
    )


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"wipe": {"x": 1}}, "parameters.wipe", "wipe is not a script of this run (it runs: "
         "tuned, cpu)"),
        ({"tuned": {"pases": 3}}, "parameters.tuned.pases", "tuned has no parameter 'pases' (it "
         "has: disk, fraction, label, passes, quick)"),
        ({"cpu": {"passes": 3}}, "parameters.cpu.passes", "cpu has no parameter 'passes' (it "
         "has: none)"),
        ({"tuned": {"disk": "sda"}}, "parameters.tuned.disk", "a storage parameter is filled in "
         "per device by edgebox"),
        ({"tuned": {"passes": "3"}}, "parameters.tuned.passes", "expected an int value, got '3'"),
        ({"tuned": {"passes": 2.5}}, "parameters.tuned.passes", "expected an int value, got 2.5"),
        ({"tuned": {"passes": True}}, "parameters.tuned.passes", "expected an int value, got True"),
        ({"tuned": {"passes": 0}}, "parameters.tuned.passes", "0 is outside 1..10"),
        ({"tuned": {"passes": 11}}, "parameters.tuned.passes", "11 is outside 1..10"),
        ({"tuned": {"fraction": 0.99}}, "parameters.tuned.fraction", "0.99 is outside 0.01..0.95"),
        ({"tuned": {"fraction": float("nan")}}, "parameters.tuned.fraction",
         "expected a float value, got nan"),
        ({"tuned": {"quick": 1}}, "parameters.tuned.quick", "expected a boolean value, got 1"),
        ({"tuned": {"label": 7}}, "parameters.tuned.label", "expected a string value, got 7"),
        ({"tuned": {"label": "x" * 4097}}, "parameters.tuned.label", "at most 4096 characters"),
        ({"tuned": {"label": "a\0b"}}, "parameters.tuned.label", "without NUL"),
        ({"tuned": {"label": ["a"]}}, "parameters.tuned.label", "expected a string value, got"),
    ],
)  # fmt: skip
def test_a_parameter_the_script_does_not_take_is_refused_with_its_path(
    given: dict[str, dict[str, Any]], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan_with(given)
    assert caught.value.field == field
    assert message in caught.value.detail


def test_env_lines_are_quoted_for_sh() -> None:
    meta = ScriptMetadata(name="x", type=T, timeout=60)
    text = env_lines(7, meta, "sda", "", {"label": "it's $HOME", "fast": True, "n": 2})
    assert text == (
        "export EDGEBOX_RESULT_ID='7'\n"
        "export EDGEBOX_SCRIPT_NAME='x'\n"
        "export EDGEBOX_TIMEOUT='60'\n"
        "export EDGEBOX_DEVICE='/dev/sda'\n"
        "export EDGEBOX_PARAM_LABEL='it'\\''s $HOME'\n"
        "export EDGEBOX_PARAM_FAST='true'\n"
        "export EDGEBOX_PARAM_N='2'\n"
    )
    assert shell_quote("a\nb") == "'a\nb'"


def machine(status: Status, previous: Status | None = None) -> Machine:
    return Machine(
        id=1, system_id="abc123", hostname="node-abc123", status=status, previous_status=previous,
        arch="", pool="default", zone="default", owner=None, locked=False,
        power_state=PowerState.UNKNOWN, created_at=0.0, updated_at=0.0, status_changed_at=0.0,
    )  # fmt: skip


def result(name: str, status: ResultStatus, device: str = "") -> ScriptResult:
    return ScriptResult(
        id=1, run_id=1, machine_id=1, script_id=1, name=name, version=1, position=0, expand="",
        device=device, interface="", parameters={}, timeout=0, parallel="any", status=status,
        reported_status=None, exit_code=None, runtime=None, results={}, note="",
        started_at=None, finished_at=None,
    )  # fmt: skip


RUN = ScriptRun(1, 1, RunKind.TESTING, RunState.RUNNING, "olga", 0.0, None)


def test_a_run_ends_by_the_lifecycle_table() -> None:
    passed = conclude_run(
        machine(Status.TESTING, Status.DEPLOYED), RUN, [result("a", ResultStatus.PASSED)]
    )
    assert passed.state is RunState.PASSED
    assert passed.lifecycle is not None and passed.lifecycle.status is Status.DEPLOYED
    failed = conclude_run(
        machine(Status.TESTING, Status.DEPLOYED),
        RUN,
        [result("disk", ResultStatus.FAILED, "sda"), result("cpu", ResultStatus.TIMEDOUT)],
    )
    assert failed.lifecycle is not None and failed.lifecycle.status is Status.FAILED_TESTING
    [event] = failed.events
    assert event.message == (
        "node-abc123: testing -> failed_testing: failed: disk on sda (failed), cpu (timedout)"
    )
    assert event.data["failed"] == ["disk on sda", "cpu"] and event.level.value == "error"


def test_a_machine_that_left_the_run_stays_where_it_is() -> None:
    ending = conclude_run(machine(Status.BROKEN), RUN, [result("a", ResultStatus.FAILED)])
    assert ending.lifecycle is None and ending.state is RunState.FAILED and not ending.events
    expired = expire_run(machine(Status.BROKEN), RUN, [], "silent")
    assert expired.lifecycle is None and expired.state is RunState.ABORTED


def test_the_watchdog_fails_the_machine_with_its_reason() -> None:
    ending = expire_run(machine(Status.TESTING, Status.READY), RUN, [], "silent for 31 min")
    assert ending.lifecycle is not None and ending.lifecycle.status is Status.FAILED_TESTING
    assert ending.events[0].message.endswith(
        "testing -> failed_testing: watchdog: silent for 31 min"
    )
