"""Two workers finishing the last two upstream tasks at the same moment on PostgreSQL (READ COMMITTED): the
dependant is released and the run is settled exactly once, whichever transaction commits first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from unified.engine import Engine
from unified.errors import StoreConflict, StoreError
from unified.store.sql import SqlStore
from unified.task import Task

pytestmark = pytest.mark.postgres


@pytest.fixture
def engines(pg_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on two stores (two connection pools), as two worker processes would have."""
    first, second = SqlStore(pg_url), SqlStore(pg_url)
    yield Engine(first), Engine(second)
    first.close()
    second.close()


def finish_both_at_once(engines: tuple[Engine, Engine], tasks: list[Task]) -> str:
    """Start a run of ``tasks``, claim a and b, and complete them in overlapping transactions; returns the run id.

    The first worker completes a and keeps its transaction open until the second has completed b (or 1 s has
    passed: with row locks the second one waits for the first one's commit, as it must)."""
    one, two = engines
    run_id = one.create_run(None, None, tasks)
    claimed = {r.task_id: r for r in one.claim("w1", limit=2)}
    assert set(claimed) == {"a", "b"}
    a_done, b_done = threading.Event(), threading.Event()

    def finish_a() -> None:
        with one.batch():
            one.complete(claimed["a"], "success", result=1)
            a_done.set()
            b_done.wait(1.0)

    def finish_b() -> None:
        assert a_done.wait(5)
        with two.batch():
            two.complete(claimed["b"], "success", result=2)
            b_done.set()

    run_together(finish_a, finish_b)
    return run_id


def test_a_fan_in_task_is_released_when_its_last_two_upstreams_finish_together(engines) -> None:
    tasks = [Task(task_id="a", func=print), Task(task_id="b", func=print),
             Task(task_id="c", func=print, dependencies=["a", "b"])]  # fmt: skip
    run_id = finish_both_at_once(engines, tasks)
    assert engines[0].store.get_task(f"{run_id}.c").state == "queued"


def test_a_run_is_settled_when_its_last_two_tasks_finish_together(engines) -> None:
    run_id = finish_both_at_once(engines, [Task(task_id="a", func=print), Task(task_id="b", func=print)])
    assert engines[0].store.get_run(run_id).state == "success"


def lock_waiters(store: SqlStore) -> int:
    """How many sessions of this test (its application_name) wait for a row lock right now."""
    with store._tx(write=False) as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND application_name = current_setting('application_name')"
        ).scalar()


def lock_tasks_holding_m_first(store: SqlStore, holding_m: threading.Event, at_call: int = 1) -> Any:
    """A stand-in for ``store.lock_tasks`` whose ``at_call``-th call first locks m in its transaction and returns
    only once another session waits for a row lock (the completion, holding z, waits for m)."""
    lock_tasks, calls = store.lock_tasks, []

    def lock(task_ids: list[str], for_dependant: bool = False) -> object:
        calls.append(task_ids)
        if len(calls) == at_call:
            lock_tasks(["m"])
            holding_m.set()
            deadline = time.monotonic() + 5
            while not lock_waiters(store):
                assert time.monotonic() < deadline, "the completion never waited for m"
                time.sleep(0.01)
        return lock_tasks(task_ids, for_dependant)

    return lock


def run_together(*targets: Callable[[], None]) -> None:
    """Run each target in a thread of its own and wait for all (15 s at most)."""
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert not any(t.is_alive() for t in threads)


def test_a_task_added_on_a_task_and_its_dependant_as_the_first_finishes_lands_despite_the_deadlock(
    engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The completion of z changes z's row and locks its dependants (m), in one statement; a new task n depending on
    z and m locks them in id order (m, then z). With the submit holding m while the completion waits for it,
    PostgreSQL breaks the deadlock by aborting one of the two transactions; an aborted submit runs again, as a
    worker's report does, and both land."""
    one, two = engines
    one.submit([Task(task_id="z", func=print), Task(task_id="m", func=print, dependencies=["z"])])
    (z,) = one.claim("w1")
    holding_m = threading.Event()
    monkeypatch.setattr(two.store, "lock_tasks", lock_tasks_holding_m_first(two.store, holding_m))
    outcome: dict[str, object] = {}

    def finish_z() -> None:
        assert holding_m.wait(5)
        for _ in range(3):  # as a worker's report does after a StoreError
            try:
                one.complete(z, "success", result=1)
                outcome["completed"] = True
                return
            except StoreConflict as exc:
                outcome["completion aborted"] = exc
                z.state = "running"

    def add_n() -> None:
        try:
            outcome["submitted"] = two.submit([Task(task_id="n", func=print, dependencies=["z", "m"])])
        except StoreError as exc:
            outcome["submit failed"] = exc

    run_together(finish_z, add_n)
    assert outcome.get("completed") and outcome.get("submitted") == ["n"], outcome
    states = {t: one.store.get_task(t).state for t in ("z", "m", "n")}
    assert states == {"z": "success", "m": "queued", "n": "pending"}


def test_a_task_added_on_a_running_task_whose_outcome_waits_for_the_insert_is_released(
    engines: tuple[Engine, Engine],
) -> None:
    """On PostgreSQL a task's outcome is one statement, which reads the task's dependants with the snapshot it began
    with. A task added on it by a transaction that holds its row while that statement waits is not among them (it
    stayed pending for good): the insert marks the task (gained_dependants), and the outcome that finds the mark on
    the row it updates reads its dependants again. (A look the submit took after its commit came, in 2-7 of 1,000
    pairs, before the waiting outcome took the row, and missed it too.)"""
    one, two = engines
    one.submit([Task(task_id="a", func=print)])
    (a,) = one.claim("w1")
    holding_a = threading.Event()

    def add_b() -> None:
        with two.batch():
            two.submit([Task(task_id="b", func=print, dependencies=["a"])])  # holds a's row until the commit
            holding_a.set()
            deadline = time.monotonic() + 5
            while not lock_waiters(two.store):  # the outcome of a has begun, and waits for a's row
                assert time.monotonic() < deadline, "the outcome never waited for a"
                time.sleep(0.01)

    def finish_a() -> None:
        assert holding_a.wait(5)
        one.complete(a, "success", result=1)

    run_together(add_b, finish_a)
    assert [one.store.get_task(t).state for t in ("a", "b")] == ["success", "queued"]


@pytest.mark.parametrize(("how", "meeting"), [("submit", 1), ("ctx.add_task", 1)])
def test_a_submit_that_loses_a_deadlock_to_an_outcome_runs_again_and_lands(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, how: str, meeting: int
) -> None:
    """As the test above, with the submit's sessions quick to detect the deadlock (deadlock_timeout 50 ms), so that
    its transaction is the one PostgreSQL aborts, in the insert: it runs again, through ``submit`` and through
    ``ctx.add_task`` alike (whose check of its parent shares the transaction)."""
    quick = pg_url.replace("options=-csearch_path", "options=-cdeadlock_timeout%3D50%20-csearch_path")
    first, second = SqlStore(pg_url), SqlStore(quick)
    try:
        one, two = Engine(first), Engine(second)
        one.submit([Task(task_id="z", func=print), Task(task_id="m", func=print, dependencies=["z"]),
                    Task(task_id="p", func=print)])  # fmt: skip
        claimed = {r.task_id: r for r in one.claim("w1", limit=3)}
        holding_m = threading.Event()
        # the insert's look at its upstream tasks is the first call
        monkeypatch.setattr(two.store, "lock_tasks", lock_tasks_holding_m_first(two.store, holding_m, meeting))
        outcome: dict[str, object] = {}

        def finish_z() -> None:
            assert holding_m.wait(5)
            one.complete(claimed["z"], "success", result=1)
            outcome["completed"] = True

        def add_n() -> None:
            new = Task(task_id="n", func=print, dependencies=["z", "m"])
            try:
                added = two.submit([new]) if how == "submit" else [two._add_child(new, claimed["p"], iter([1]))]
                outcome["added"] = added
            except Exception as exc:  # reported below, with what the other thread did
                outcome["failed"] = f"{type(exc).__name__}: {exc}"

        run_together(finish_z, add_n)
        assert outcome.get("completed") and outcome.get("added") == ["n"], outcome
    finally:
        first.close()
        second.close()
