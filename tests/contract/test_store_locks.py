"""lock_dependants and lock_run: the current states in id order inside a transaction; unknown runs are named.
update_tasks_locking_dependants: a compare-and-set, then the dependants of what moved and was asked for."""

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


def succeed(task_id: str) -> tuple[str, str, int, dict[str, object]]:
    """The move of a running task's first attempt to success."""
    return (task_id, "running", 1, {"state": "success", "result": 7, "finished_at": 2000.0})


def test_update_tasks_locking_dependants_locks_those_of_the_moved_task(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task("up", state="running", attempts=1), make_task("lone", state="running", attempts=1)])
    store.insert_tasks([make_task(n, state="pending", dependencies=["up"]) for n in ("b", "a")])
    with store.atomic():  # one move: a chain step's outcome (one statement on PostgreSQL)
        moved, locked = store.update_tasks_locking_dependants([succeed("up")], [True])
    assert moved == [True]
    assert locked == {"up": [Dependant("a", "pending", ("up",)), Dependant("b", "pending", ("up",))]}
    assert store.get_task("up").state == "success" and store.get_task("up").result == 7
    with store.atomic():  # moved, but none of it to lock
        assert store.update_tasks_locking_dependants([succeed("lone")], [True]) == ([True], {})


def test_update_tasks_locking_dependants_locks_nothing_for_what_did_not_move_or_was_not_asked(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task(n, state="running", attempts=1) for n in ("up", "other", "third")])
    store.insert_tasks([make_task(f"d-{n}", state="pending", dependencies=[n]) for n in ("up", "other", "third")])
    late = ("up", "running", 2, {"state": "success"})  # an attempt that lost its lease: the fencing token differs
    with store.atomic():
        assert store.update_tasks_locking_dependants([late], [True]) == ([False], {})
        assert store.update_tasks_locking_dependants([succeed("up")], [False]) == ([True], {})
        failed = ("third", "running", 1, {"state": "failure"})
        moved, locked = store.update_tasks_locking_dependants(
            [succeed("other"), failed, succeed("missing")], [True, False, True]
        )
    assert moved == [True, True, False]
    assert locked == {"other": [Dependant("d-other", "pending", ("other",))]}


def test_a_move_without_changes_only_compares(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("up", state="running", attempts=1)])
    store.insert_tasks([make_task("down", state="pending", dependencies=["up"])])
    with store.atomic():
        assert store.update_tasks([("up", "running", 1, {}), ("up", "queued", None, {}), ("gone", None, None, {})]) == [
            True, False, False]  # fmt: skip
        moved, locked = store.update_tasks_locking_dependants([("up", "running", 1, {})], [True])
    assert moved == [True] and [d.id for d in locked["up"]] == ["down"]
    assert store.get_task("up").state == "running"
