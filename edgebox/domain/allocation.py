"""Allocation constraints: which Ready machines a request may have, and why the others not.

A request names what it needs (arch, at least so many cores and MiB of memory, tags it must
have and must not have, a pool, a zone) and how many machines. `choose` is all or nothing:
either `count` machines match and the smallest of them are chosen (so that a request for two
cores does not take the 128-core box), or none are, with a refusal that says how many matched
and, for the rest, which constraint each one failed first — "3 of 10 Ready machines match;
5 have fewer than 8 cores, 2 lack tag gpu".

Cores and memory come from the commissioned inventory (`cpu.cores`, `memory.total_mib`); a
machine never commissioned does not match a minimum it cannot prove.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from edgebox.domain.hardware import normal_arch

MAX_COUNT = 10_000


@dataclass(frozen=True, slots=True)
class Constraints:
    arch: str | None = None
    min_cores: int | None = None
    min_memory_mib: int | None = None
    tags: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    pool: str | None = None
    zone: str | None = None

    def describe(self) -> str:
        parts = []
        if self.arch:
            parts.append(f"arch {self.arch}")
        if self.min_cores:
            parts.append(f"at least {self.min_cores} cores")
        if self.min_memory_mib:
            parts.append(f"at least {self.min_memory_mib} MiB of memory")
        parts += [f"tag {t}" for t in self.tags]
        parts += [f"not tag {t}" for t in self.not_tags]
        if self.pool:
            parts.append(f"pool {self.pool}")
        if self.zone:
            parts.append(f"zone {self.zone}")
        return ", ".join(parts) or "no constraints"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A Ready machine as allocation sees it: cores, memory and `uname -m` come from its
    commissioned inventory (None: not known)."""

    system_id: str
    arch: str  # the machine's arch ("amd64/generic"), or empty
    tags: tuple[str, ...]
    pool: str
    zone: str
    cores: int | None = None
    memory_mib: int | None = None
    inventory_arch: str = ""

    @property
    def arch_name(self) -> str:
        """`amd64` from "amd64/generic", else from the inventory's `uname -m`."""
        return normal_arch(self.arch.split("/", 1)[0] or self.inventory_arch)


@dataclass(frozen=True, slots=True)
class Choice:
    chosen: tuple[str, ...]  # system ids; empty when refused
    matched: int
    refusal: str = ""


def mismatch(constraints: Constraints, machine: Candidate) -> str | None:
    """The first constraint `machine` fails, worded for a count ("lack tag gpu"); None: fits."""
    for check in (_place, _arch, _tags, _cores, _memory):
        reason = check(constraints, machine)
        if reason is not None:
            return reason
    return None


def _place(c: Constraints, machine: Candidate) -> str | None:
    if c.pool is not None and machine.pool != c.pool:
        return f"are not in pool {c.pool}"
    if c.zone is not None and machine.zone != c.zone:
        return f"are not in zone {c.zone}"
    return None


def _arch(c: Constraints, machine: Candidate) -> str | None:
    if c.arch and machine.arch_name != normal_arch(c.arch):
        return f"are not {normal_arch(c.arch)}"
    return None


def _tags(c: Constraints, machine: Candidate) -> str | None:
    missing = [t for t in c.tags if t not in machine.tags]
    if missing:
        return f"lack tag {missing[0]}"
    unwanted = [t for t in c.not_tags if t in machine.tags]
    return f"have tag {unwanted[0]}" if unwanted else None


def _cores(c: Constraints, machine: Candidate) -> str | None:
    if not c.min_cores:
        return None
    if machine.cores is None:
        return "have no commissioned core count"
    return f"have fewer than {c.min_cores} cores" if machine.cores < c.min_cores else None


def _memory(c: Constraints, machine: Candidate) -> str | None:
    if not c.min_memory_mib:
        return None
    if machine.memory_mib is None:
        return "have no commissioned memory size"
    if machine.memory_mib < c.min_memory_mib:
        return f"have less than {c.min_memory_mib} MiB of memory"
    return None


def choose(constraints: Constraints, candidates: Sequence[Candidate], count: int) -> Choice:
    """`count` of the Ready `candidates` that fit, smallest first; or none, and why."""
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be from 1 to {MAX_COUNT}, got {count}")
    fits: list[Candidate] = []
    why: Counter[str] = Counter()
    for machine in candidates:
        reason = mismatch(constraints, machine)
        if reason is None:
            fits.append(machine)
        else:
            why[reason] += 1
    if len(fits) < count:
        return Choice((), len(fits), _refusal(constraints, len(candidates), len(fits), count, why))
    fits.sort(key=lambda m: (m.cores or 0, m.memory_mib or 0, m.system_id))
    return Choice(tuple(m.system_id for m in fits[:count]), len(fits))


def _refusal(
    constraints: Constraints, ready: int, matched: int, count: int, why: Counter[str]
) -> str:
    if ready == 0:
        return f"no machine is Ready to allocate (asked for {count})"
    reasons = "; ".join(f"{n} {reason}" for reason, n in why.most_common())
    text = (
        f"asked for {count} machine(s) with {constraints.describe()}: "
        f"{matched} of {ready} Ready machine(s) match"
    )
    return f"{text}; {reasons}" if reasons else text
