"""Allocation constraints: what fits, the smallest first, all or nothing, and refusals that
count why the other Ready machines did not fit."""

from __future__ import annotations

import pytest

from edgebox.domain.allocation import Candidate, Constraints, choose, mismatch, normal_arch


def machine(
    sid: str, cores: int | None = 8, memory: int | None = 16384, *, arch: str = "amd64/generic",
    tags: tuple[str, ...] = (), pool: str = "default", zone: str = "default",
    inventory_arch: str = "",
) -> Candidate:  # fmt: skip
    return Candidate(sid, arch, tags, pool, zone, cores, memory, inventory_arch)


def test_each_constraint_names_what_a_machine_lacks() -> None:
    m = machine("a", 8, 16384, tags=("gpu",), pool="hpc", zone="z1")
    assert mismatch(Constraints(), m) is None
    cases = {
        Constraints(pool="web"): "are not in pool web",
        Constraints(zone="z2"): "are not in zone z2",
        Constraints(arch="arm64"): "are not arm64",
        Constraints(tags=("gpu", "ib")): "lack tag ib",
        Constraints(not_tags=("gpu",)): "have tag gpu",
        Constraints(min_cores=9): "have fewer than 9 cores",
        Constraints(min_memory_mib=16385): "have less than 16385 MiB of memory",
    }
    for constraints, reason in cases.items():
        assert mismatch(constraints, m) == reason, constraints
    fits = Constraints("amd64", 8, 16384, ("gpu",), ("ib",), "hpc", "z1")
    assert mismatch(fits, m) is None


def test_unknown_cores_or_memory_never_satisfy_a_minimum() -> None:
    m = machine("a", None, None)
    assert mismatch(Constraints(min_cores=1), m) == "have no commissioned core count"
    assert mismatch(Constraints(min_memory_mib=1), m) == "have no commissioned memory size"
    assert mismatch(Constraints(), m) is None


def test_arch_names_are_folded() -> None:
    assert normal_arch("x86_64") == "amd64" and normal_arch("AArch64") == "arm64"
    assert mismatch(Constraints(arch="x86_64"), machine("a")) is None
    # No arch recorded on the machine: the inventory's `uname -m` decides.
    assert (
        mismatch(Constraints(arch="arm64"), machine("b", arch="", inventory_arch="aarch64")) is None
    )


def test_the_smallest_machines_that_fit_are_chosen() -> None:
    ready = [machine("big", 64, 262144), machine("small", 4, 8192), machine("mid", 16, 65536),
             machine("tiny", 2, 4096)]  # fmt: skip
    choice = choose(Constraints(min_cores=4), ready, 2)
    assert (choice.chosen, choice.matched, choice.refusal) == (("small", "mid"), 3, "")


def test_all_or_nothing_with_the_reasons_counted() -> None:
    ready = [
        machine("a", 4), machine("b", 2), machine("c", 16, tags=("gpu",)),
        machine("d", 32, pool="web"), machine("e", 32),
    ]  # fmt: skip
    choice = choose(Constraints(min_cores=8, pool="default"), ready, 3)
    assert choice.chosen == () and choice.matched == 2
    assert choice.refusal == (
        "asked for 3 machine(s) with at least 8 cores, pool default: 2 of 5 Ready machine(s) "
        "match; 2 have fewer than 8 cores; 1 are not in pool default"
    )
    assert choose(Constraints(), [], 1).refusal == "no machine is Ready to allocate (asked for 1)"


def test_count_is_bounded() -> None:
    for count in (0, 10_001):
        with pytest.raises(ValueError, match="count must be from 1 to 10000"):
            choose(Constraints(), [machine("a")], count)
