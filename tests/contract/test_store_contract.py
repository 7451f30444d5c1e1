"""The store contract: every verb of ``unified.store.base.Store``, the same tests for every implementation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.helpers.together import at_once
from unified.errors import ConflictError, DuplicateTaskError, NotFoundError, SerializationError, ValidationError
from unified.graph import graph_hash
from unified.store.base import Store
from unified.store.records import (
    AlertRecord,
    AttemptRecord,
    LogRecord,
    RunRecord,
    TaskRecord,
    VersionRecord,
    WorkflowRecord,
    WorkflowSummary,
)
from unified.store.sql_direct import COPY_MIN

MakeTask = Callable[..., TaskRecord]
NOW = 1000.0


def ids(records: list[TaskRecord]) -> list[str]:
    return [r.id for r in records]


def test_store_satisfies_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store.url, str)
    assert isinstance(store.keeps_objects, bool)


# tasks: insert, get, list
def test_insert_and_get_round_trip_every_field(store: Store, make_task: MakeTask) -> None:
    record = make_task(
        "a",
        run_id="r1",
        spec={"func": "m:f", "args": [1, 2.5, None, True], "kwargs": {"ü": "ß"}},
        priority=7,
        queue="q",
        dependencies=["x", "y"],
        attempts=2,
        result={"rows": [1, 2], "ok": True},
        error={"type": "ValueError", "message": "bad", "traceback": "..."},
        metadata={"owner": "ana"},
        queued_at=1001.5,
        started_at=1002.25,
        finished_at=1003.125,
        not_before=1004.0,
        lease_owner="w1",
        lease_expires_at=1005.0,
        reason="because",
        schedule_id="s1",
        holder="host:1:abcd",
    )
    store.insert_tasks([record])
    assert record.seq > 0
    assert store.get_task("a") == record


def test_insert_assigns_increasing_seq_across_batches(store: Store, make_task: MakeTask) -> None:
    first = [make_task(f"a{i}") for i in range(3)]
    second = [make_task(f"b{i}") for i in range(3)]
    store.insert_tasks(first)
    store.insert_tasks(second)
    seqs = [store.get_task(r.id).seq for r in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    assert [r.seq for r in first + second] == seqs


def test_a_large_batch_keeps_every_field_and_gets_seqs_in_order(store: Store, make_task: MakeTask) -> None:
    # enough tasks for PostgreSQL's bulk path (COPY, seqs read back), with text COPY must escape
    batch = [
        make_task(
            f"t{i:03d}",
            name=f"tab\there {i}\nnew line",
            run_id="r" if i % 2 else None,
            priority=i % 3,
            metadata={"i": i, "note": "tab\there\nnew line, back\\slash, \u00e9"},
            queued_at=NOW + i + 0.25,
        )
        for i in range(2 * COPY_MIN)
    ]
    store.insert_tasks(batch)
    seqs = [r.seq for r in batch]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(batch)
    stored = {r.id: r for r in store.get_tasks([r.id for r in batch])}
    assert [stored[r.id] for r in batch] == batch


def test_a_large_batch_keeps_every_dependency(store: Store, make_task: MakeTask) -> None:
    # enough dependency rows for PostgreSQL's COPY; the store reads dependants through them
    names = [f"t{i:03d}" for i in range(COPY_MIN + 2)]
    store.insert_tasks([make_task(names[0])] + [
        make_task(n, state="pending", dependencies=[names[i], names[0]] if i else [names[0]])
        for i, n in enumerate(names[1:])
    ])  # fmt: skip
    assert sorted(t.id for t in store.dependants(names[0])) == names[1:]
    assert [t.id for t in store.dependants(names[5])] == [names[6]]
    locked = store.lock_dependants(names[:3])
    assert {up: sorted(d.id for d in found) for up, found in locked.items() if up != names[0]} == {
        names[1]: [names[2]], names[2]: [names[3]]}  # fmt: skip


def test_insert_nothing_is_fine(store: Store) -> None:
    store.insert_tasks([])
    assert store.count_tasks_by_state() == {}


def test_duplicate_id_rejects_the_whole_batch(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    with pytest.raises(DuplicateTaskError, match="'a'"):
        store.insert_tasks([make_task("b"), make_task("a")])
    with pytest.raises(DuplicateTaskError, match="'c'"):
        store.insert_tasks([make_task("c"), make_task("c")])
    assert ids(store.get_tasks(["a", "b", "c"])) == ["a"]


def test_duplicate_inside_atomic_leaves_other_writes(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    with store.atomic():
        store.insert_tasks([make_task("b")])
        with pytest.raises(DuplicateTaskError):
            store.insert_tasks([make_task("c"), make_task("a")])
        store.insert_tasks([make_task("d")])
    assert sorted(ids(store.get_tasks(["a", "b", "c", "d"]))) == ["a", "b", "d"]


def test_unknown_ids_raise_not_found_naming_the_id(store: Store) -> None:
    calls = [
        lambda: store.get_task("nope-task"),
        lambda: store.update_task("nope-task", None, priority=1),
        lambda: store.update_task("nope-task", "queued", state="running"),
        lambda: store.get_run("nope-run"),
        lambda: store.update_run("nope-run", None, state="success"),
        lambda: store.get_workflow("nope-wf"),
        lambda: store.delete_workflow("nope-wf"),
        lambda: store.get_version("nope-wf", 1),
        lambda: store.finish_attempt("nope-task", 1, state="success"),
        lambda: store.update_alert("nope-alert", status="failed"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match="nope-"):
            call()


def test_get_tasks_returns_the_existing_ones(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b")])
    assert sorted(ids(store.get_tasks(["b", "missing", "a"]))) == ["a", "b"]
    assert store.get_tasks([]) == []


def test_list_tasks_newest_first_with_filters(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task(f"t{i}", run_id="r1" if i % 2 else "r2", created_at=NOW + i) for i in range(6)])
    store.update_task("t4", None, state="success")
    assert ids(store.list_tasks()) == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert ids(store.list_tasks(limit=2, offset=1)) == ["t4", "t3"]
    assert ids(store.list_tasks(run_id="r1")) == ["t5", "t3", "t1"]
    assert ids(store.list_tasks(state="queued", run_id="r2")) == ["t2", "t0"]
    assert ids(store.list_tasks(state="success")) == ["t4"]


def test_run_tasks_in_insertion_order_and_progress(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("z", run_id="r"), make_task("a", run_id="r"), make_task("o", run_id="other")])
    store.insert_tasks([make_task("m", run_id="r", state="pending")])
    assert ids(store.run_tasks("r")) == ["z", "a", "m"]
    assert store.run_tasks("none") == []
    assert store.run_progress("r") == {"queued": 2, "pending": 1}


def test_dependants_follow_dependencies(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks(
        [make_task("up"), make_task("d1", dependencies=["up"]), make_task("d2", dependencies=["up", "other"])]
    )
    assert ids(store.dependants("up")) == ["d1", "d2"]
    assert ids(store.dependants("other")) == ["d2"]
    assert store.dependants("d1") == []


# compare-and-set
def test_update_task_compare_and_set(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    assert store.update_task("a", "queued", state="running", lease_owner="w") is True
    assert store.update_task("a", "queued", state="canceled") is False
    task = store.get_task("a")
    assert (task.state, task.lease_owner) == ("running", "w")
    assert store.update_task("a", None, priority=9) is True
    assert store.get_task("a").priority == 9


def test_update_task_checks_the_attempt_fencing_token(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a", state="running", attempts=2)])
    assert store.update_task("a", "running", 1, state="success") is False
    assert store.update_task("a", "running", 2, state="success", result=[1, {"x": None}]) is True
    task = store.get_task("a")
    assert (task.state, task.result) == ("success", [1, {"x": None}])


def test_update_task_round_trips_json_and_refuses_other_values(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    store.update_task("a", None, result={"n": 1.5, "s": "é", "l": [None]}, error=None, metadata={"k": [1]})
    task = store.get_task("a")
    assert (task.result, task.error, task.metadata) == ({"n": 1.5, "s": "é", "l": [None]}, None, {"k": [1]})
    if store.keeps_objects:
        return
    with pytest.raises(SerializationError, match="result"):
        store.update_task("a", None, state="success", result=object())
    with pytest.raises(SerializationError):
        store.insert_tasks([make_task("b", spec={"func": object()})])
    assert store.get_task("a").state == "queued"
    assert store.get_tasks(["b"]) == []


def test_a_savepoint_that_raises_undoes_only_its_own_writes(store: Store, make_task: MakeTask) -> None:
    if store.keeps_objects:
        pytest.skip("the memory store has no rollback: the engine checks before it writes")
    store.insert_tasks([make_task("a")])
    with store.atomic():
        store.insert_tasks([make_task("b")])
        with pytest.raises(RuntimeError), store.savepoint():
            assert store.update_task("a", "queued", state="running")
            store.insert_tasks([make_task("c")])
            raise RuntimeError("boom")
        with store.savepoint():  # the transaction goes on, and a savepoint that ends well keeps its writes
            store.insert_tasks([make_task("d")])
    assert store.get_task("a").state == "queued"
    assert sorted(ids(store.get_tasks(["a", "b", "c", "d"]))) == ["a", "b", "d"]


def test_a_savepoint_outside_a_transaction_is_one(store: Store, make_task: MakeTask) -> None:
    if store.keeps_objects:
        pytest.skip("the memory store has no rollback: the engine checks before it writes")
    with pytest.raises(RuntimeError), store.savepoint():
        store.insert_tasks([make_task("a")])
        raise RuntimeError("boom")
    with store.savepoint():
        store.insert_tasks([make_task("b")])
    assert ids(store.get_tasks(["a", "b"])) == ["b"]


def test_update_task_dependencies_moves_dependants(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b"), make_task("c", dependencies=["a"])])
    assert store.update_task("c", None, dependencies=["b"]) is True
    assert store.dependants("a") == []
    assert ids(store.dependants("b")) == ["c"]
    assert store.get_task("c").dependencies == ["b"]
    assert store.update_task("c", "running", dependencies=["a"]) is False  # not running: nothing moves
    assert store.dependants("a") == [] and ids(store.dependants("b")) == ["c"]
    assert store.get_task("c").dependencies == ["b"]


# claims and leases
def test_claim_highest_priority_then_fifo(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks(
        [make_task("low1"), make_task("high1", priority=5), make_task("low2"), make_task("mid", priority=1)]
    )
    store.insert_tasks([make_task("high2", priority=5), make_task("neg", priority=-1)])
    order = []
    while claimed := store.claim_tasks("w", NOW, 30.0, limit=1):
        order += ids(claimed)
    assert order == ["high1", "high2", "mid", "low1", "low2", "neg"]


def test_claim_batch_is_ordered_and_limited(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task(f"t{i}", priority=i % 2) for i in range(6)])
    assert store.claim_tasks("w", NOW, 30.0, limit=0) == []
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=4)) == ["t1", "t3", "t5", "t0"]
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=4)) == ["t2", "t4"]
    assert store.claim_tasks("w", NOW, 30.0, limit=4) == []


def test_claim_sets_the_lease(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("fresh"), make_task("again", state="retrying", attempts=1, started_at=500.0)])
    claimed = {t.id: t for t in store.claim_tasks("w1", NOW, 30.0, limit=5)}
    for task_id, attempts, started in (("fresh", 1, NOW), ("again", 2, 500.0)):
        task = claimed[task_id]
        assert (task.state, task.attempts, task.started_at) == ("running", attempts, started)
        assert (task.lease_owner, task.lease_expires_at) == ("w1", NOW + 30.0)
        assert store.get_task(task_id) == task
        started = store.list_attempts(task_id)[-1]  # the claim records the start of the attempt it makes
        assert (started.number, started.state, started.started_at, started.worker) == (attempts, "running", NOW, "w1")


def test_claim_takes_only_claimable_states(store: Store, make_task: MakeTask) -> None:
    states = ["pending", "running", "success", "failure", "timeout", "canceled", "skipped", "queued"]
    store.insert_tasks([make_task(state, state=state) for state in states])
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=10)) == ["queued"]


def test_retrying_waits_for_not_before(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks(
        [
            make_task("later", state="retrying", not_before=NOW + 20),
            make_task("soon", state="retrying", not_before=NOW + 10),
            make_task("now", state="retrying", not_before=NOW),
        ]
    )
    assert store.next_not_before() == NOW
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=5)) == ["now"]
    assert store.next_not_before() == NOW + 10
    assert store.claim_tasks("w", NOW + 9.9, 30.0, limit=5) == []
    assert ids(store.claim_tasks("w", NOW + 15, 30.0, limit=5)) == ["soon"]
    assert ids(store.claim_tasks("w", NOW + 25, 30.0, limit=5)) == ["later"]
    assert store.next_not_before() is None


def test_claim_filters_queues(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a", queue="alpha"), make_task("b", queue="beta"), make_task("c", queue="gamma")])
    assert store.claim_tasks("w", NOW, 30.0, limit=5, queues=[]) == []
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=5, queues=["beta", "gamma"])) == ["b", "c"]
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=5, queues=iter(["alpha"]))) == ["a"]


def test_a_queue_named_twice_is_claimed_from_once(store: Store, make_task: MakeTask) -> None:
    # a worker started with `--queues a,a`: each task is taken once, in order, and none is lost from the queue
    store.insert_tasks([make_task(f"t{i}", queue="alpha", priority=i % 2) for i in range(4)])
    claimed = store.claim_tasks("w", NOW, 30.0, limit=3, queues=["alpha", "alpha"])
    assert ids(claimed) == ["t1", "t3", "t0"]
    assert ids(store.claim_tasks("w", NOW, 30.0, limit=3, queues=["alpha", "alpha"])) == ["t2"]


def test_requeued_task_is_claimed_again(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    (task,) = store.claim_tasks("w1", NOW, 30.0)
    assert store.update_task("a", "running", task.attempts, state="queued", lease_owner=None, lease_expires_at=None)
    (again,) = store.claim_tasks("w2", NOW + 1, 30.0)
    assert (again.id, again.attempts, again.lease_owner) == ("a", 2, "w2")


def test_extend_leases_only_for_the_owner_and_attempt(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b"), make_task("c")])
    store.claim_tasks("w1", NOW, 30.0, limit=2)  # a and b, attempt 1
    store.claim_tasks("w2", NOW, 30.0, limit=1)  # c
    held = store.extend_leases("w1", {"a": 1, "b": 2, "c": 1, "missing": 1}, NOW + 100)
    assert held == ["a"]
    assert store.get_task("a").lease_expires_at == NOW + 100
    assert store.get_task("b").lease_expires_at == NOW + 30
    assert store.get_task("c").lease_expires_at == NOW + 30
    assert store.extend_leases("w1", {}, NOW + 100) == []
    store.update_task("a", "running", state="success")
    assert store.extend_leases("w1", {"a": 1}, NOW + 200) == []


def test_expired_leases(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b"), make_task("c"), make_task("idle")])
    store.claim_tasks("w", NOW, 10.0, limit=1)  # a expires at NOW + 10
    store.claim_tasks("w", NOW, 50.0, limit=2)  # b and c at NOW + 50
    assert store.expired_leases(NOW + 5) == []
    assert ids(store.expired_leases(NOW + 20)) == ["a"]
    assert sorted(ids(store.expired_leases(NOW + 60))) == ["a", "b", "c"]
    assert len(store.expired_leases(NOW + 60, limit=2)) == 2
    store.update_task("a", "running", state="success")
    assert sorted(ids(store.expired_leases(NOW + 60))) == ["b", "c"]


def test_leases_of_a_worker(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b"), make_task("c"), make_task("d"), make_task("idle")])
    store.claim_tasks("w", NOW, 10.0, limit=2)  # a and b expire at NOW + 10
    store.claim_tasks("w", NOW, 50.0, limit=1)  # c at NOW + 50
    store.claim_tasks("other", NOW, 10.0, limit=1)  # d
    assert store.leases_of("w", NOW + 5) == {}
    assert store.leases_of("w", NOW + 20) == {"a": 1, "b": 1}
    assert store.leases_of("w", NOW + 60) == {"a": 1, "b": 1, "c": 1}
    store.update_task("a", "running", state="success")
    assert store.leases_of("w", NOW + 60) == {"b": 1, "c": 1}, "only running tasks"
    assert store.leases_of("nobody", NOW + 60) == {}


def test_count_tasks_by_state(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b"), make_task("c", state="pending")])
    store.claim_tasks("w", NOW, 30.0)
    assert store.count_tasks_by_state() == {"running": 1, "queued": 1, "pending": 1}


# attempts and logs
def test_attempts_by_number_and_finished(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    store.insert_attempt(AttemptRecord("a", 2, "running", NOW + 10, worker="w2"))
    store.insert_attempt(AttemptRecord("a", 1, "running", NOW, worker="w1"))
    error = {"type": "KeyError", "message": "k", "traceback": "Traceback ..."}
    store.finish_attempt("a", 1, state="failure", finished_at=NOW + 5, error=error)
    first, second = store.list_attempts("a")
    assert first == AttemptRecord("a", 1, "failure", NOW, NOW + 5, error, "w1")
    assert second == AttemptRecord("a", 2, "running", NOW + 10, worker="w2")
    assert store.list_attempts("other") == []
    assert store.attempts_of(["other", "a"]) == {"a": [first, second]}
    with pytest.raises(NotFoundError, match="3"):
        store.finish_attempt("a", 3, state="success")


def test_update_tasks_sets_each_task_whose_state_and_attempt_match(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task(n) for n in ("a", "b", "c", "d")])
    claimed = {t.id: t.attempts for t in store.claim_tasks("w", NOW, 30.0, limit=3)}  # a, b, c run attempt 1
    changed = store.update_tasks([
        ("a", "running", claimed["a"], {"state": "success", "result": {"x": 1}, "finished_at": NOW + 1}),
        # the same fields as a's move (one statement for both on PostgreSQL), from another attempt: fenced out
        ("b", "running", claimed["b"] + 1, {"state": "success", "result": 2, "finished_at": NOW + 1}),
        ("c", "queued", None, {"state": "canceled"}),  # c is not queued any more
        ("nope", None, None, {"state": "queued"}),  # no such task
        ("d", "queued", None, {"state": "canceled", "reason": "r", "finished_at": NOW + 2}),
        ("c", "running", None, {"state": "retrying", "not_before": NOW + 5, "error": {"type": "E"}}),
    ])  # fmt: skip
    assert changed == [True, False, False, False, True, True]
    a, b, c, d = (store.get_task(n) for n in ("a", "b", "c", "d"))
    assert (a.state, a.result, a.finished_at) == ("success", {"x": 1}, NOW + 1)
    assert (b.state, b.result) == ("running", None)
    assert (c.state, c.not_before, c.error) == ("retrying", NOW + 5, {"type": "E"})
    assert (d.state, d.reason, d.finished_at) == ("canceled", "r", NOW + 2)


def test_a_change_of_a_key_or_an_unknown_field_is_refused_naming_it(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])
    for field in ("seq", "colour"):
        with pytest.raises(ValidationError, match=f"cannot change {field}"):
            store.update_task("a", None, None, **{field: 1})
    assert store.get_task("a").state == "queued"


def test_update_tasks_of_a_batch_where_every_task_matches(store: Store, make_task: MakeTask) -> None:
    names = [f"t{i}" for i in range(5)]  # SQLite applies such a batch in one executemany
    store.insert_tasks([make_task(n) for n in names])
    store.claim_tasks("w", NOW, 30.0, limit=5)
    moves = [(n, "running", 1, {"state": "success", "result": i, "finished_at": NOW + i}) for i, n in enumerate(names)]
    assert store.update_tasks(moves) == [True] * 5
    assert [(t.state, t.result) for t in map(store.get_task, names)] == [("success", i) for i in range(5)]
    assert store.update_tasks(moves) == [False] * 5  # the same moves again: nothing is running any more


def test_update_tasks_of_many_tasks_with_the_same_fields(store: Store, make_task: MakeTask) -> None:
    names = [f"t{i}" for i in range(6)]  # enough for PostgreSQL to send them as one pipelined executemany
    store.insert_tasks([make_task(n) for n in names])
    store.claim_tasks("w", NOW, 30.0, limit=6)
    fenced = {"t1", "t4"}  # reports of another attempt
    moves = [(n, "running", 2 if n in fenced else 1, {"state": "success", "finished_at": NOW + i}) for i, n in
             enumerate(names)]  # fmt: skip
    assert store.update_tasks(moves) == [n not in fenced for n in names]
    assert [store.get_task(n).state for n in names] == ["running" if n in fenced else "success" for n in names]
    with pytest.raises(ValidationError, match="update_task for that"):  # only the one-task verb rewrites the graph
        store.update_tasks([("t0", None, None, {"dependencies": ["t1"]})])
    assert store.get_task("t0").dependencies == []


def test_update_tasks_of_moves_alike_changes_each_as_its_own_compare_and_set(store: Store, make_task: MakeTask) -> None:
    names = [f"t{i}" for i in range(7)]  # PostgreSQL changes moves alike but for the id with one statement
    store.insert_tasks([make_task(n) for n in names])
    store.claim_tasks("w", NOW, 30.0, limit=7)
    assert store.update_task("t2", "running", state="canceled", finished_at=NOW)  # moved meanwhile
    done = {"state": "success", "finished_at": NOW + 1}
    moves = [(n, "running", 1, done) for n in ("t0", "t1", "t2", "nope", "t5")]
    moves += [("t3", "running", 2, done), ("t4", "running", 1, {"state": "failure", "finished_at": NOW + 1})]
    assert store.update_tasks(moves) == [True, True, False, False, True, False, True]
    assert [store.get_task(n).state for n in names] == [
        "success", "success", "canceled", "running", "failure", "success", "running"]  # fmt: skip
    twice = [("t6", "running", 1, done), ("t6", "running", 1, done)]  # the second one finds it moved
    assert store.update_tasks(twice) == [True, False]
    assert store.get_task("t6").state == "success"


def test_finish_attempts_sets_only_those_still_running(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b")])
    store.insert_attempt(AttemptRecord("a", 1, "lost", NOW, NOW + 1, worker="w1"))
    store.insert_attempt(AttemptRecord("a", 2, "running", NOW + 2, worker="w2"))
    store.insert_attempt(AttemptRecord("b", 1, "running", NOW, worker="w1"))
    error = {"type": "E", "message": "m"}
    store.finish_attempts([
        ("a", 1, {"state": "failure", "finished_at": NOW + 9, "error": error}),  # ended already: kept
        ("a", 2, {"state": "success", "finished_at": NOW + 9, "error": None}),
        ("b", 1, {"state": "failure", "finished_at": NOW + 8, "error": error}),
        ("nope", 1, {"state": "success", "finished_at": NOW + 9, "error": None}),  # no such attempt: ignored
    ])  # fmt: skip
    assert store.list_attempts("a") == [
        AttemptRecord("a", 1, "lost", NOW, NOW + 1, worker="w1"),
        AttemptRecord("a", 2, "success", NOW + 2, NOW + 9, worker="w2"),
    ]
    assert store.list_attempts("b") == [AttemptRecord("b", 1, "failure", NOW, NOW + 8, error, "w1")]


def test_task_with_attempts_reads_both_together(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a", metadata={"k": [1]}), make_task("b")])
    store.insert_attempt(AttemptRecord("a", 2, "running", NOW + 10, worker="w2"))
    store.insert_attempt(AttemptRecord("a", 1, "failure", NOW, NOW + 5, {"type": "E", "message": "m"}, "w1"))
    task, attempts = store.task_with_attempts("a")
    assert task == store.get_task("a")
    assert attempts == store.list_attempts("a") and [a.number for a in attempts] == [1, 2]
    assert store.task_with_attempts("b") == (store.get_task("b"), [])  # a task with no attempt yet
    with pytest.raises(NotFoundError, match="'nope'"):
        store.task_with_attempts("nope")


def test_logs_oldest_first(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a"), make_task("b")])
    lines = [LogRecord("a", 1, NOW + i, "INFO", f"line {i} ✓") for i in range(3)]
    store.append_logs(lines[:2])
    store.append_logs(iter([LogRecord("b", 1, NOW, "ERROR", "other"), lines[2]]))
    store.append_logs([])
    assert store.get_logs("a") == lines
    assert [line.message for line in store.get_logs("b")] == ["other"]
    assert store.get_logs("none") == []


def test_a_large_batch_of_log_lines_keeps_every_character(store: Store, make_task: MakeTask) -> None:
    store.insert_tasks([make_task("a")])  # enough lines for PostgreSQL's COPY, with text COPY must escape
    lines = [LogRecord("a", 1, NOW + i, "INFO", f"tab\there {i}\nnew line, back\\slash, \\N, \u00e9") for i in
             range(COPY_MIN + 1)]  # fmt: skip
    store.append_logs(lines)
    assert store.get_logs("a") == lines
    if not store.keeps_objects:  # the memory store does not check that the task exists
        strays = [LogRecord("nope", 1, NOW, "INFO", "x")] * len(lines)
        with pytest.raises(NotFoundError, match="no task for these log lines"):
            store.append_logs(strays)
        store.append_logs(lines[:1])  # the failed batch left the store usable
        assert len(store.get_logs("a")) == len(lines) + 1


# workflows and versions
def workflow(workflow_id: str, created_at: float, **fields: object) -> WorkflowRecord:
    return WorkflowRecord(workflow_id, f"wf {workflow_id}", created_at=created_at, updated_at=created_at, **fields)  # type: ignore[arg-type]


def test_workflows_put_replace_list_delete(store: Store) -> None:
    store.put_workflow(workflow("w2", NOW + 1))
    store.put_workflow(workflow("w1", NOW, tasks=[{"task_id": "t1", "dependencies": []}]))
    replaced = workflow("w2", NOW + 1, description="new")
    replaced.updated_at = NOW + 9
    store.put_workflow(replaced)
    assert store.get_workflow("w2") == dataclasses.replace(replaced, draft_hash=graph_hash([]))
    assert [w.workflow_id for w in store.list_workflows()] == ["w1", "w2"]
    assert store.get_workflow("w1").tasks == [{"task_id": "t1", "dependencies": []}]
    store.freeze_draft("w1", NOW + 2)
    store.delete_workflow("w1")
    assert [w.workflow_id for w in store.list_workflows()] == ["w2"]
    assert store.list_versions("w1") == []
    with pytest.raises(NotFoundError, match="w1"):
        store.get_workflow("w1")


def test_the_store_keeps_each_drafts_hash_whatever_the_caller_says(store: Store) -> None:
    draft = [{"task_id": "t1", "dependencies": []}]
    store.put_workflow(workflow("w", NOW, tasks=draft, draft_hash="stale"))
    assert store.get_workflow("w").draft_hash == graph_hash(draft)
    edited = store.get_workflow("w")
    edited.tasks.append({"task_id": "t2", "dependencies": ["t1"]})  # read, changed and written back, hash and all
    store.put_workflow(edited)
    assert store.get_workflow("w").draft_hash == graph_hash(edited.tasks) != graph_hash(draft)


def test_a_draft_is_frozen_once_until_it_changes_and_stays_a_draft(store: Store) -> None:
    draft = [{"task_id": "t1", "dependencies": []}]
    store.put_workflow(workflow("w", NOW, tasks=draft))
    first = store.freeze_draft("w", NOW + 1)
    assert first == VersionRecord("w", 1, graph_hash(draft), draft, NOW + 1)
    assert store.freeze_draft("w", NOW + 2) == first, "unchanged: the current version, not a new one"
    edited = store.get_workflow("w")
    assert edited.current_version == 1
    edited.tasks.append({"task_id": "t2", "dependencies": ["t1"]})
    store.put_workflow(edited)
    second = store.freeze_draft("w", NOW + 3)
    assert (second.number, second.tasks, second.created_at) == (2, edited.tasks, NOW + 3)
    stored = store.get_workflow("w")
    assert (stored.current_version, stored.tasks) == (2, edited.tasks), "the draft stays a draft"
    assert [v.number for v in store.list_versions("w")] == [1, 2]
    assert store.get_version("w", 1) == first
    with pytest.raises(NotFoundError, match="3"):
        store.get_version("w", 3)


def test_the_store_keeps_each_workflows_version_pointer_whatever_a_put_says(store: Store) -> None:
    draft = [{"task_id": "t1", "dependencies": []}]
    store.put_workflow(workflow("w", NOW, tasks=draft, current_version=7))
    assert store.get_workflow("w").current_version is None, "a new workflow has no version yet"
    stale = store.get_workflow("w")  # read before a start froze the draft, written back after it
    first = store.freeze_draft("w", NOW + 1)
    stale.description = "edited"
    store.put_workflow(stale)
    assert (store.get_workflow("w").current_version, store.get_workflow("w").description) == (1, "edited")
    assert store.freeze_draft("w", NOW + 2) == first, "still the current version: no second one"


def test_a_version_pointer_lost_before_puts_kept_it_is_frozen_past(store: Store) -> None:
    if store.keeps_objects:
        pytest.skip("the memory store keeps nothing from a process that ran an earlier release")
    draft = [{"task_id": "t1", "dependencies": []}]
    store.put_workflow(workflow("w", NOW, tasks=draft))
    store.freeze_draft("w", NOW + 1)
    with store._engine.begin() as conn:  # type: ignore[attr-defined]  # as an earlier release could leave it
        conn.execute(sa.text("UPDATE workflows SET current_version = NULL"))
    again = store.freeze_draft("w", NOW + 2)
    assert (again.number, store.get_workflow("w").current_version) == (2, 2)
    assert [v.number for v in store.list_versions("w")] == [1, 2]


def test_freezing_refuses_an_unknown_workflow_and_an_empty_draft(store: Store) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.freeze_draft("nope", NOW)
    store.put_workflow(workflow("w", NOW))
    with pytest.raises(ValidationError, match="no tasks: add tasks"):
        store.freeze_draft("w", NOW)
    assert store.list_versions("w") == []


def test_concurrent_freezes_of_one_changed_draft_make_one_version(
    store_url: str, open_store: Callable[[str], Store]
) -> None:
    first = open_store(store_url)
    second = first if store_url.startswith("memory") else open_store(store_url)  # memory: one process only
    try:
        first.put_workflow(workflow("w", NOW, tasks=[{"task_id": "t1", "dependencies": []}]))
        calls = [lambda each=each: each.freeze_draft("w", NOW).number for each in (first, second) * 4]
        assert at_once(calls) == ([1] * 8, []) and [v.number for v in first.list_versions("w")] == [1]
    finally:
        first.close()
        if second is not first:
            second.close()


def test_workflows_are_found_by_name_and_named_by_id_the_oldest_first(store: Store) -> None:
    store.put_workflow(dataclasses.replace(workflow("late", NOW + 5), name="late one"))
    store.put_workflow(workflow("early", NOW, tasks=[{"task_id": "t"}]))
    store.put_workflow(workflow("other", NOW - 1))
    found = store.find_workflow("wf early")
    assert found is not None and (found.workflow_id, found.tasks) == ("early", [{"task_id": "t"}])
    found.tasks.append({"task_id": "x"})  # a copy, as every read hands out
    assert store.get_workflow("early").tasks == [{"task_id": "t"}]
    assert store.find_workflow("late one").workflow_id == "late"  # type: ignore[union-attr]
    assert store.find_workflow("nobody") is None
    assert list(store.workflow_names().items()) == [("other", "wf other"), ("early", "wf early"), ("late", "late one")]


def test_a_second_workflow_of_one_name_is_refused_and_nothing_changes(store: Store) -> None:
    store.put_workflow(workflow("w1", NOW, tasks=[{"task_id": "t"}]))
    with pytest.raises(ConflictError, match=r"a workflow named 'wf w1' exists \(id w1\): use it, or give this one"):
        store.put_workflow(dataclasses.replace(workflow("w2", NOW + 1), name="wf w1"))
    assert store.workflow_names() == {"w1": "wf w1"}
    itself = store.get_workflow("w1")
    itself.description = "edited"
    store.put_workflow(itself)  # a workflow replacing itself keeps its name
    store.put_workflow(workflow("w2", NOW + 1))
    with pytest.raises(ConflictError, match="'wf w1' exists"):
        store.put_workflow(dataclasses.replace(store.get_workflow("w2"), name="wf w1"))  # renamed onto a taken one
    assert store.workflow_names() == {"w1": "wf w1", "w2": "wf w2"}
    assert store.get_workflow("w1").description == "edited"


def test_a_page_of_workflows_is_read_by_id_in_the_order_given(store: Store) -> None:
    for n in range(3):
        store.put_workflow(workflow(f"w{n}", NOW + n, tasks=[{"task_id": f"t{n}"}]))
    page = store.get_workflows(["w2", "gone", "w0"])
    assert [(w.workflow_id, w.tasks) for w in page] == [("w2", [{"task_id": "t2"}]), ("w0", [{"task_id": "t0"}])]
    page[0].tasks.append({"task_id": "x"})  # a copy, as every read hands out
    assert store.get_workflow("w2").tasks == [{"task_id": "t2"}]
    assert store.get_workflows([]) == []


def test_a_page_of_workflow_summaries_counts_each_draft_in_the_order_given(store: Store) -> None:
    for n in range(3):
        store.put_workflow(workflow(f"w{n}", NOW + n, tasks=[{"task_id": f"t{i}"} for i in range(n)]))
    store.freeze_draft("w2", NOW + 5)
    assert store.workflow_summaries(["w2", "gone", "w0", "w1"]) == [
        WorkflowSummary("w2", "wf w2", "", 1, 2),
        WorkflowSummary("w0", "wf w0", "", None, 0),
        WorkflowSummary("w1", "wf w1", "", None, 1),
    ]
    assert store.workflow_summaries([]) == []


def test_a_workflow_summary_names_the_newest_run_of_its_workflow(store: Store) -> None:
    for n in range(3):
        store.put_workflow(workflow(f"w{n}", NOW + n))
    store.insert_run(RunRecord("old", "w1", 1, "failure", created_at=NOW + 1))
    store.insert_run(RunRecord("newest", "w1", 1, "running", created_at=NOW + 3))
    store.insert_run(RunRecord("other", "w2", 1, "success", created_at=NOW + 9))
    store.insert_run(RunRecord("older", "w1", 1, "success", created_at=NOW + 2))  # inserted later, created earlier
    store.insert_run(RunRecord("first", "w0", 1, "success", created_at=NOW + 4))
    store.insert_run(RunRecord("second", "w0", 1, "canceled", created_at=NOW + 4))  # created at once: inserted later
    summaries = {s.workflow_id: s for s in store.workflow_summaries(["w0", "w1", "w2"])}
    assert summaries["w1"][5:] == ("newest", "running", NOW + 3)
    assert summaries["w2"][5:] == ("other", "success", NOW + 9)
    assert summaries["w0"][5:] == ("second", "canceled", NOW + 4)
    store.put_workflow(workflow("w3", NOW + 3))
    assert store.workflow_summaries(["w3"])[0][5:] == (None, None, None), "never run"


def test_changing_a_workflow_or_version_read_back_leaves_the_stored_one_alone(store: Store) -> None:
    specs = [{"task_id": "t", "dependencies": ["u"], "kwargs": {"n": [1, 2]}}]
    draft = workflow("w", NOW, tasks=specs)
    store.put_workflow(draft)
    frozen = store.freeze_draft("w", NOW)
    specs[0]["kwargs"]["n"].append(3)  # the caller's own objects, after they were stored
    for read in (frozen, store.get_workflow("w"), store.list_workflows()[0], store.get_version("w", 1)):
        assert read.tasks == [{"task_id": "t", "dependencies": ["u"], "kwargs": {"n": [1, 2]}}]
        read.tasks[0]["dependencies"].append("v")
        read.tasks.append({"task_id": "x"})
    assert (
        store.get_workflow("w").tasks
        == store.list_versions("w")[0].tasks
        == [{"task_id": "t", "dependencies": ["u"], "kwargs": {"n": [1, 2]}}]
    )


# runs
def test_runs_insert_get_list_update(store: Store) -> None:
    runs = [
        RunRecord("r1", "w1", 1, "success", params={"day": "2026-01-01"}, created_at=NOW),
        RunRecord("r2", "w2", 1, "running", trigger="schedule", created_at=NOW + 1, metadata={"k": [1]}),
        RunRecord("r3", "w1", 2, "running", created_at=NOW + 2, started_at=NOW + 2),
        RunRecord("r4", None, None, "failure", trigger="api", created_at=NOW + 3),
    ]
    for run in runs:
        store.insert_run(run)
    assert store.get_run("r2") == runs[1]
    assert [r.run_id for r in store.list_runs()] == ["r4", "r3", "r2", "r1"]
    assert [r.run_id for r in store.list_runs(workflow_id="w1")] == ["r3", "r1"]
    assert [r.run_id for r in store.list_runs(state="running", limit=1)] == ["r3"]
    assert [r.run_id for r in store.list_runs(workflow_id="w1", state="running")] == ["r3"]
    assert store.update_run("r3", "running", state="success", finished_at=NOW + 5) is True
    assert store.update_run("r3", "running", state="failure") is False
    assert store.update_run("r3", None, metadata={"note": "x"}) is True
    run = store.get_run("r3")
    assert (run.state, run.finished_at, run.metadata) == ("success", NOW + 5, {"note": "x"})
    with pytest.raises(ConflictError, match="r1"):
        store.insert_run(RunRecord("r1", None, None, "running"))


def test_runs_page_by_a_keyset_that_new_runs_do_not_shift(store: Store) -> None:
    for n in range(5):  # two share a creation time: seq orders them
        store.insert_run(RunRecord(f"r{n}", "w", 1, "running", created_at=NOW + min(n, 3)))
    first = store.list_runs(limit=2)
    assert [r.run_id for r in first] == ["r4", "r3"] and first[0].seq > first[1].seq
    store.insert_run(RunRecord("new", "w", 1, "running", created_at=NOW + 10))  # arrives between two pages
    after = (first[-1].created_at, first[-1].seq)
    assert [r.run_id for r in store.list_runs(limit=2, before=after)] == ["r2", "r1"]
    assert [r.run_id for r in store.list_runs(before=after, workflow_id="w", state="running")] == ["r2", "r1", "r0"]


# alerts
def test_alerts_insert_update_list(store: Store) -> None:
    store.insert_alert(AlertRecord("a1", "task.failed", {"task_id": "t", "n": [1]}, NOW, status="pending"))
    store.insert_alert(AlertRecord("a2", "run.success", {}, NOW + 1, channel="webhook"))
    store.update_alert("a1", status="failed", error="HTTP 500")
    assert store.list_alerts() == [
        AlertRecord("a2", "run.success", {}, NOW + 1, channel="webhook"),
        AlertRecord("a1", "task.failed", {"task_id": "t", "n": [1]}, NOW, status="failed", error="HTTP 500"),
    ]
    assert [a.alert_id for a in store.list_alerts(limit=1)] == ["a2"]


# transactions
def test_atomic_is_reentrant_and_groups_writes(store: Store, make_task: MakeTask) -> None:
    with store.atomic():
        store.insert_tasks([make_task("a")])
        with store.atomic():
            assert store.update_task("a", "queued", state="running")
        assert store.get_task("a").state == "running"
    assert store.get_task("a").state == "running"


def test_atomic_rolls_back_on_error(store: Store, make_task: MakeTask) -> None:
    if store.keeps_objects:
        pytest.skip("the memory store has no rollback: the engine checks before it writes")
    store.insert_tasks([make_task("a")])
    with pytest.raises(RuntimeError), store.atomic():
        store.update_task("a", None, state="running")
        store.insert_tasks([make_task("b")])
        raise RuntimeError("boom")
    assert store.get_task("a").state == "queued"
    assert store.get_tasks(["b"]) == []
