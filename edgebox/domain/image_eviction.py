"""Which cached images to evict so that an incoming one fits the cache's size budget.

Least recently used first (a failed import too: its partial files take room), and never an
image that is pinned, held by a deploying machine, or still importing. Files are shared between
images (two releases with the same kernel), so evicting an image frees only the bytes of the
files that no remaining image lists; the plan recounts after each pick.

A plan that cannot make room evicts nothing: throwing away images and then refusing the import
anyway would lose them for nothing. Pure: the service gathers the facts and acts on the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CachedImage:
    image_id: str
    name: str
    files: Mapping[str, int]  # sha256 -> size
    last_used: float
    importing: bool  # its files are coming in now
    pinned: bool
    holders: int  # machines using it now (a deploy in progress)

    @property
    def evictable(self) -> bool:
        return not self.importing and not self.pinned and self.holders == 0


@dataclass(frozen=True, slots=True)
class EvictionPlan:
    evict: tuple[str, ...]  # image ids, in eviction order
    fits: bool
    used: int  # bytes in the cache now
    incoming: int  # bytes the new image adds (its files not already cached)
    budget: int
    kept: int  # bytes that cannot be evicted (pinned, in use, importing)

    def refusal(self) -> str:
        """Why it does not fit, for a person."""
        return (
            f"the image cache budget is {_size(self.budget)}: {_size(self.used)} are in use, "
            f"of which {_size(self.kept)} cannot be evicted (pinned, in use by a deploying "
            f"machine, or still importing), and the image needs {_size(self.incoming)} more; "
            "unpin or delete images, or raise images.budget_bytes"
        )


def used_bytes(images: Iterable[CachedImage]) -> int:
    sizes: dict[str, int] = {}
    for image in images:
        sizes.update(image.files)
    return sum(sizes.values())


def plan_eviction(
    images: Sequence[CachedImage], incoming: Mapping[str, int], budget: int
) -> EvictionPlan:
    """Images to evict so that `incoming` (sha256 -> size) fits `budget` (0: no budget)."""
    used = used_bytes(images)
    cached: set[str] = set()
    for image in images:
        cached.update(image.files)
    adds = sum(size for sha, size in incoming.items() if sha not in cached)
    kept = used_bytes(i for i in images if not i.evictable)
    if budget <= 0 or used + adds <= budget:
        return EvictionPlan((), True, used, adds, budget, kept)
    remaining = list(images)
    evict: list[str] = []
    for victim in sorted(
        (i for i in images if i.evictable), key=lambda i: (i.last_used, i.image_id)
    ):
        remaining.remove(victim)
        evict.append(victim.image_id)
        still = used_bytes(remaining)
        left = {sha for image in remaining for sha in image.files}
        adds_now = sum(size for sha, size in incoming.items() if sha not in left)
        if still + adds_now <= budget:
            return EvictionPlan(tuple(evict), True, used, adds, budget, kept)
    return EvictionPlan((), False, used, adds, budget, kept)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
