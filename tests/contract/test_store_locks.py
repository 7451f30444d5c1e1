"""lock_dependants and lock_run: the current states in id order inside a transaction; unknown runs are named."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from unified.errors import NotFoundError
from unified.store.base import Store
from unified.store.records import Dependant, RunRecord, TaskRecord


def test_lock_dependants_returns_the_current_states_in_id_order(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task("up"), make_task("other")])
    store.insert_tasks([make_task(n, state="pending", dependencies=["up"]) for n in ("b", "a", "c")])
    store.insert_tasks([make_task("d", state="pending", dependencies=["other"])])
    with store.atomic():
        store.update_task("b", "pending", state="queued")
        locked = store.lock_dependants(["up"])["up"]
    assert [(t.id, t.state) for t in locked] == [("a", "pending"), ("b", "queued"), ("c", "pending")]
    assert store.lock_dependants(["a", "missing"]) == {}


def test_lock_run_needs_an_existing_run(store: Store) -> None:
    store.insert_run(RunRecord("r1", None, None, "running", created_at=1.0))
    with store.atomic():
        store.lock_run("r1")
        assert store.update_run("r1", "running", state="success")
    with pytest.raises(NotFoundError, match="'nope'"), store.atomic():
        store.lock_run("nope")


def test_lock_dependants_of_several_tasks_groups_them_by_upstream(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task("a"), make_task("b"), make_task("lone")])
    store.insert_tasks([make_task("both", state="pending", dependencies=["a", "b"]),
                        make_task("only-b", state="pending", dependencies=["b"])])  # fmt: skip
    with store.atomic():
        locked = store.lock_dependants(["a", "b", "lone", "missing"])
    assert {up: [t.id for t in found] for up, found in locked.items()} == {"a": ["both"], "b": ["both", "only-b"]}
    assert locked["a"][0] == Dependant("both", "pending", ("a", "b"))


def test_lock_dependants_of_many_tasks(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    ups = [f"up{i:02}" for i in range(12)]  # more than SQLite reads one by one
    store.insert_tasks([make_task(u) for u in ups])
    dependants = [make_task(f"d{i:02}", state="pending", dependencies=sorted({u, ups[0]})) for i, u in enumerate(ups)]
    store.insert_tasks(dependants)
    with store.atomic():
        locked = store.lock_dependants(ups)
    assert sorted(t.id for t in locked[ups[0]]) == [f"d{i:02}" for i in range(12)]
    assert {u: [t.id for t in found] for u, found in locked.items() if u != ups[0]} == {
        u: [f"d{i:02}"] for i, u in enumerate(ups) if i}  # fmt: skip


def test_lock_tasks_returns_the_current_records_in_id_order(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("b"), make_task("a"), make_task("c")])
    with store.atomic():
        store.update_task("b", "queued", state="canceled")
        locked = store.lock_tasks(["c", "b", "missing", "b"])
    assert [(t.id, t.state) for t in locked] == [("b", "canceled"), ("c", "queued")]


def test_a_task_locked_by_one_transaction_waits_for_it_in_another(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task("up")])
    changed = threading.Event()

    def finish_up() -> None:
        store.update_task("up", "queued", state="canceled")
        changed.set()

    with store.atomic():
        store.lock_tasks(["up"])
        other = threading.Thread(target=finish_up)
        other.start()
        assert not changed.wait(0.3), "the other writer waits for the lock's transaction to end"
    other.join(10)
    assert changed.is_set() and store.get_task("up").state == "canceled"
