"""Which images make room: LRU order, pins, holders, imports in progress, shared files."""

from __future__ import annotations

from edgebox.domain.image_eviction import CachedImage, plan_eviction, used_bytes


def img(
    image_id: str,
    files: dict[str, int],
    last_used: float,
    *,
    pinned: bool = False,
    holders: int = 0,
    importing: bool = False,
) -> CachedImage:
    return CachedImage(image_id, f"name-{image_id}", files, last_used, importing, pinned, holders)


def test_no_budget_or_room_enough_evicts_nothing() -> None:
    images = [img("a", {"f1": 100}, 1.0)]
    assert plan_eviction(images, {"f2": 10**12}, 0).evict == ()
    plan = plan_eviction(images, {"f2": 50}, 150)
    assert plan.fits and plan.evict == () and (plan.used, plan.incoming) == (100, 50)


def test_least_recently_used_goes_first_and_only_as_many_as_needed() -> None:
    images = [
        img("new", {"f1": 100}, 30.0),
        img("old", {"f2": 100}, 10.0),
        img("mid", {"f3": 100}, 20.0),
    ]
    plan = plan_eviction(images, {"f4": 100}, 300)
    assert plan.fits and plan.evict == ("old",)
    plan = plan_eviction(images, {"f4": 200}, 300)
    assert plan.evict == ("old", "mid")


def test_pinned_held_and_importing_images_are_never_evicted() -> None:
    images = [
        img("pinned", {"f1": 100}, 1.0, pinned=True),
        img("held", {"f2": 100}, 2.0, holders=1),
        img("coming", {"f3": 100}, 3.0, importing=True),
        img("free", {"f4": 100}, 4.0),
    ]
    plan = plan_eviction(images, {"f5": 100}, 400)
    assert plan.fits and plan.evict == ("free",)
    # Even evicting every candidate leaves no room: evict nothing, and say why.
    plan = plan_eviction(images, {"f5": 250}, 400)
    assert not plan.fits and plan.evict == ()
    assert plan.kept == 300
    assert "cannot be evicted" in plan.refusal() and "images.budget_bytes" in plan.refusal()


def test_shared_files_free_nothing_until_their_last_image_goes() -> None:
    images = [
        img("a", {"kernel": 100, "disk-a": 50}, 1.0),
        img("b", {"kernel": 100, "disk-b": 50}, 2.0),
    ]
    assert used_bytes(images) == 200
    # Evicting a frees only disk-a (50): the kernel stays for b.
    plan = plan_eviction(images, {"disk-c": 50}, 200)
    assert plan.evict == ("a",)
    plan = plan_eviction(images, {"disk-c": 150}, 200)
    assert plan.evict == ("a", "b")


def test_files_the_incoming_image_shares_are_not_counted_twice() -> None:
    images = [img("a", {"kernel": 100}, 1.0)]
    plan = plan_eviction(images, {"kernel": 100, "disk": 50}, 150)
    assert plan.fits and plan.evict == () and plan.incoming == 50
