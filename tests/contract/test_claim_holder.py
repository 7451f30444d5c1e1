"""A task whose in-process function one engine holds (a lambda, a closure, a function of ``__main__``) is claimed by
that engine only: any other claim passes it by, in every path of the claim, and leaves it claimable for its holder."""

from __future__ import annotations

from collections.abc import Callable

from unified.store.base import Store
from unified.store.records import TaskRecord

MakeTask = Callable[..., TaskRecord]
NOW = 1000.0
MINE, THEIRS = "host:1:aaaa", "host:2:bbbb"


def claim(store: Store, holder: str | None, limit: int = 10, **options: object) -> list[str]:
    return [t.id for t in store.claim_tasks("w", NOW, 60.0, limit=limit, holder=holder, **options)]  # type: ignore[arg-type]


def test_held_tasks_are_claimed_by_their_holder_only(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks(
        [make_task("theirs", holder=THEIRS, priority=5), make_task("anyone"), make_task("mine", holder=MINE)]
    )
    assert claim(store, None) == ["anyone"]
    assert claim(store, MINE) == ["mine"]
    assert store.get_task("theirs").state == "queued"
    assert claim(store, THEIRS, queues=["default"]) == ["theirs"]


def test_a_held_task_ahead_does_not_stop_the_claim(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task(f"held{i}", holder=THEIRS, priority=9) for i in range(5)] + [make_task("free")])
    assert claim(store, MINE, limit=1) == ["free"]
    assert claim(store, THEIRS, limit=10) == [f"held{i}" for i in range(5)]  # still in their order


def test_a_limited_queue_passes_held_tasks_by(store: Store, make_task: MakeTask) -> None:
    store.set_queue_limit("gpu", 2)
    store.insert_tasks([make_task("theirs", queue="gpu", holder=THEIRS), make_task("free", queue="gpu")])
    assert claim(store, MINE) == ["free"]
    assert claim(store, THEIRS) == ["theirs"]


def test_released_tasks_held_elsewhere_are_left_pending(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("theirs", state="pending", holder=THEIRS), make_task("p", state="pending")])
    with store.atomic():
        assert claim(store, MINE, released=["theirs", "p"]) == ["p"]
    assert store.get_task("theirs").state == "pending"  # the caller queues what its claim did not take


def test_held_tasks_lists_the_unfinished_ones_of_a_holder_oldest_first(store: Store, make_task: MakeTask) -> None:
    others = [make_task("done", holder=MINE, state="success"), make_task("free"), make_task("x", holder=THEIRS)]
    store.insert_tasks([make_task("a", holder=MINE), *others, make_task("b", holder=MINE, state="pending")])
    assert store.held_tasks(MINE) == ["a", "b"] and store.held_tasks("nobody") == []
