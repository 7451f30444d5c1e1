"""lock_dependants and lock_run: the current states in id order inside a transaction; unknown runs are named.
apply_outcomes: a compare-and-set, the attempts' ends, then the dependants of what moved and was asked for."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from unified.errors import NotFoundError
from unified.store.base import Store
from unified.store.records import AttemptRecord, Dependant, RunRecord, TaskRecord


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


def ended(task_id: str, number: int = 1, state: str = "success") -> tuple[str, int, dict[str, object]]:
    """The end of an attempt, as the engine records it."""
    return (task_id, number, {"state": state, "finished_at": 2000.0, "error": None})


def running(store: Store, *task_ids: str) -> None:
    """Record a running first attempt of each task."""
    for task_id in task_ids:
        store.insert_attempt(AttemptRecord(task_id, 1, "running", 1000.0, worker="w"))


def attempt_states(store: Store, task_id: str) -> list[tuple[int, str, float | None]]:
    return [(a.number, a.state, a.finished_at) for a in store.list_attempts(task_id)]


def test_apply_outcomes_ends_the_attempt_and_locks_the_dependants_of_the_moved_task(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task("up", state="running", attempts=1), make_task("lone", state="running", attempts=1)])
    store.insert_tasks([make_task(n, state="pending", dependencies=["up"]) for n in ("b", "a")])
    running(store, "up", "lone")
    with store.atomic():  # one move and its attempt's end: a chain step's outcome (one statement on PostgreSQL)
        moved, locked = store.apply_outcomes([succeed("up")], [True], [ended("up")])
    assert moved == [True]
    assert locked == {"up": [Dependant("a", "pending", ("up",)), Dependant("b", "pending", ("up",))]}
    assert store.get_task("up").state == "success" and store.get_task("up").result == 7
    assert attempt_states(store, "up") == [(1, "success", 2000.0)]
    with store.atomic():  # moved, but none of it to lock
        assert store.apply_outcomes([succeed("lone")], [True], [ended("lone")]) == ([True], {})
    assert attempt_states(store, "lone") == [(1, "success", 2000.0)]


def test_apply_outcomes_locks_nothing_for_what_did_not_move_or_was_not_asked(
    store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    store.insert_tasks([make_task(n, state="running", attempts=1) for n in ("up", "other", "third")])
    store.insert_tasks([make_task(f"d-{n}", state="pending", dependencies=[n]) for n in ("up", "other", "third")])
    late = ("up", "running", 2, {"state": "success"})  # an attempt that lost its lease: the fencing token differs
    with store.atomic():
        assert store.apply_outcomes([late], [True], []) == ([False], {})
        assert store.apply_outcomes([succeed("up")], [False], []) == ([True], {})
        failed = ("third", "running", 1, {"state": "failure"})
        moved, locked = store.apply_outcomes([succeed("other"), failed, succeed("missing")], [True, False, True], [])
    assert moved == [True, True, False]
    assert locked == {"other": [Dependant("d-other", "pending", ("other",))]}


@pytest.mark.parametrize("together", [False, True], ids=["one by one", "together"])
def test_apply_outcomes_ends_attempts_whether_or_not_their_task_moved_but_only_running_ones(
    store: Store, make_task: Callable[..., TaskRecord], together: bool
) -> None:
    """A report whose task was canceled meanwhile still ends its attempt; an attempt that already ended (lost,
    its task taken back) keeps its end. One by one, each call is one statement on PostgreSQL."""
    store.insert_tasks([make_task("gone", state="canceled", attempts=1), make_task("up", state="running", attempts=2)])
    store.insert_attempt(AttemptRecord("gone", 1, "running", 1000.0, worker="w"))
    store.insert_attempt(AttemptRecord("up", 1, "lost", 1000.0, 1500.0, worker="w"))
    store.insert_attempt(AttemptRecord("up", 2, "running", 1600.0, worker="w"))
    late = ("gone", "running", 1, {"state": "success", "result": 7, "finished_at": 2000.0})
    failed = ("up", "running", 2, {"state": "failure", "finished_at": 2000.0})
    calls = [([late], [True], [ended("gone")]), ([failed], [False], [ended("up", 1, "failure")])]
    if together:
        calls = [([late, failed], [True, False], [ended("gone"), ended("up", 1, "failure")])]
    with store.atomic():
        moved = [changed for call in calls for changed in store.apply_outcomes(*call)[0]]
    assert moved == [False, True]
    assert attempt_states(store, "gone") == [(1, "success", 2000.0)]
    assert attempt_states(store, "up") == [(1, "lost", 1500.0), (2, "running", None)]


def test_an_attempt_end_that_sets_nothing_changes_nothing(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("up", state="running", attempts=1)])
    running(store, "up")
    with store.atomic():
        store.finish_attempts([("up", 1, {})])
        assert store.apply_outcomes([succeed("up")], [True], [("up", 1, {})]) == ([True], {})
    assert attempt_states(store, "up") == [(1, "running", None)] and store.get_task("up").state == "success"


def test_a_savepoint_rolled_back_takes_back_the_attempt_ends_it_applied(
    durable_store: Store, make_task: Callable[..., TaskRecord]
) -> None:
    """On PostgreSQL several ends wait to go with the COMMIT; a savepoint undone drops them with its other writes
    (the memory store's savepoint undoes nothing)."""
    store = durable_store
    store.insert_tasks([make_task(n, state="running", attempts=1) for n in ("a", "b", "c")])
    running(store, "a", "b", "c")
    with store.atomic():
        with pytest.raises(RuntimeError), store.savepoint():
            store.apply_outcomes([succeed("a"), succeed("b")], [False, False], [ended("a"), ended("b")])
            raise RuntimeError("undo")
        store.apply_outcomes([succeed("c")], [False], [ended("c")])
    assert [store.get_task(n).state for n in "abc"] == ["running", "running", "success"]
    assert [attempt_states(store, n) for n in "abc"] == [[(1, "running", None)]] * 2 + [[(1, "success", 2000.0)]]


def test_a_move_without_changes_only_compares(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("up", state="running", attempts=1)])
    store.insert_tasks([make_task("down", state="pending", dependencies=["up"])])
    with store.atomic():
        assert store.update_tasks([("up", "running", 1, {}), ("up", "queued", None, {}), ("gone", None, None, {})]) == [
            True, False, False]  # fmt: skip
        moved, locked = store.apply_outcomes([("up", "running", 1, {})], [True], [])
    assert moved == [True] and [d.id for d in locked["up"]] == ["down"]
    assert store.get_task("up").state == "running"
