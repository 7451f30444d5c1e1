"""A claim that also takes pending tasks its transaction released: one write each, the claim's order kept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from unified.store.base import Store
from unified.store.records import TaskRecord
from unified.store.schema import CHUNK

MakeTask = Callable[..., TaskRecord]
NOW = 1000.0


def claim(store: Store, released: list[str], limit: int = 10, queues: list[str] | None = None) -> list[str]:
    return [t.id for t in store.claim_tasks("w", NOW, 60.0, limit=limit, queues=queues, released=released)]


def states(store: Store, *ids: str) -> list[str]:
    return [store.get_task(i).state for i in ids]


def test_released_tasks_compete_with_queued_ones_by_priority_then_age(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("old"), make_task("urgent", priority=5)])
    store.insert_tasks([make_task(f"p{i}", state="pending", priority=i) for i in (9, 0, 5)])
    with store.atomic():
        assert claim(store, ["p9", "p0", "p5"], limit=3) == ["p9", "urgent", "p5"]  # urgent is older than p5
    assert states(store, "p9", "urgent", "p5", "old", "p0") == ["running"] * 3 + ["queued", "pending"]
    started = store.get_task("p9")
    assert (started.attempts, started.queued_at, started.started_at, started.lease_owner) == (1, NOW, NOW, "w")
    assert [(a.number, a.state, a.worker) for a in store.list_attempts("p9")] == [(1, "running", "w")]
    assert store.get_task("urgent").queued_at != NOW  # a queued task keeps the time it was queued


def test_only_released_tasks_still_pending_are_taken(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("done", state="success"), make_task("q"), make_task("p", state="pending")])
    assert claim(store, ["done", "q", "missing", "p"]) == ["q", "p"]
    assert states(store, "done", "q", "p") == ["success", "running", "running"]
    assert claim(store, ["p"]) == [], "claimed once"


def test_released_tasks_of_queues_not_served_stay_pending(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("gpu", state="pending", queue="gpu"), make_task("io", state="pending", queue="io")])
    assert claim(store, ["gpu", "io"], queues=["io"]) == ["io"]
    assert states(store, "gpu") == ["pending"]


def test_a_queue_limit_holds_for_released_tasks(store: Store, make_task: MakeTask) -> None:
    store.set_queue_limit("gpu", 1)
    store.insert_tasks([make_task("busy", state="running", queue="gpu")])
    store.insert_tasks([make_task(f"g{i}", state="pending", queue="gpu") for i in range(2)] + [make_task("d")])
    assert claim(store, ["g0", "g1"]) == ["d"]
    # the store may queue them where a limit applies: either way they are left to the limit, not lost
    assert set(states(store, "g0", "g1")) <= {"pending", "queued"}
    assert claim(store, ["g0", "g1"]) == [], "gpu still runs its one"


@pytest.mark.parametrize("count", [3, CHUNK + 5])
def test_many_released_tasks_are_claimed_in_order(store: Store, make_task: MakeTask, count: int) -> None:
    ids = [f"p{i:04}" for i in range(count)]
    store.insert_tasks([make_task(i, state="pending") for i in ids])
    assert claim(store, ids, limit=count) == ids
    assert set(states(store, *ids)) == {"running"}
