"""Queue limits hold in every store, also under racing claimers; PostgreSQL notifies listeners when work arrives."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.contract.test_store_concurrency import run_threads
from unified.store.base import Store
from unified.store.records import TaskRecord

NOW = 1000.0


def claim_ids(store: Store, limit: int = 10, queues: list[str] | None = None, worker: str = "w") -> list[str]:
    return [t.id for t in store.claim_tasks(worker, NOW, 60.0, limit=limit, queues=queues)]


def test_queue_limits_are_set_replaced_and_removed(store: Store) -> None:
    assert store.queue_limits() == {}
    store.set_queue_limit("gpu", 2)
    store.set_queue_limit("io", 5)
    store.set_queue_limit("gpu", 1)
    assert store.queue_limits() == {"gpu": 1, "io": 5}
    store.set_queue_limit("io", None)
    store.set_queue_limit("never-set", None)
    assert store.queue_limits() == {"gpu": 1}


def test_a_claim_stops_at_the_limit_of_running_tasks(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task(f"g{i}", queue="gpu") for i in range(5)])
    store.insert_tasks([make_task(f"d{i}", queue="default") for i in range(3)])
    store.set_queue_limit("gpu", 2)
    first = claim_ids(store)
    assert sorted(first) == ["d0", "d1", "d2", "g0", "g1"], "two of gpu, every other task"
    assert claim_ids(store, queues=["gpu"]) == [], "gpu already runs its two"
    store.update_task("g0", "running", 1, state="success")
    assert claim_ids(store) == ["g2"], "one finished: room for one more"
    store.set_queue_limit("gpu", None)
    assert sorted(claim_ids(store)) == ["g3", "g4"]
    assert [(a.number, a.state) for a in store.list_attempts("g2")] == [(1, "running")], "limited claims record too"


def test_a_limited_claim_keeps_priority_order_across_queues(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("low", priority=0), make_task("g-high", queue="gpu", priority=9),
                        make_task("g-mid", queue="gpu", priority=5), make_task("mid", priority=5)])  # fmt: skip
    store.set_queue_limit("gpu", 1)
    assert claim_ids(store, limit=2) == ["g-high", "mid"]
    assert claim_ids(store, limit=2) == ["low"]


def test_a_limit_of_zero_pauses_a_queue(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("a", queue="paused"), make_task("b")])
    store.set_queue_limit("paused", 0)
    assert claim_ids(store) == ["b"]
    assert claim_ids(store, queues=["paused"]) == []


def test_racing_claimers_never_exceed_a_limit(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task(f"g{i:02}", queue="gpu") for i in range(40)])
    store.insert_tasks([make_task(f"d{i:02}") for i in range(40)])
    store.set_queue_limit("gpu", 3)
    taken = run_threads(lambda n: claim_ids(store, limit=4, worker=f"w{n}"), count=6)
    claimed = [task_id for ids in taken.values() for task_id in ids]  # type: ignore[attr-defined]
    assert len(claimed) == len(set(claimed)) == 24
    assert sum(task_id.startswith("g") for task_id in claimed) == 3


def test_the_memory_store_has_no_other_process_to_hear(open_store: Callable[[str], Store]) -> None:
    store = open_store("memory://")
    assert getattr(store, "listen", None) is None, "its engine wakes its pool itself"
    store.close()


def test_a_sqlite_watcher_hears_other_connections_leave_work_claimable(
    tmp_path: Path, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    with listening(f"sqlite:///{tmp_path}/u.db", open_store) as (writer, heard):
        writer.insert_tasks([make_task("p", state="pending")])
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.3)  # a commit that leaves nothing claimable wakes nobody
        writer.insert_tasks([make_task("q")])
        assert heard.get(timeout=5) == "", "queued work, of any queue"
        claim_ids(writer, limit=1)
        writer.update_task("q", "running", 1, state="retrying", not_before=time.time() + 3600)
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.3)  # claimed, then a retry not due for an hour: nothing to take now
        writer.update_task("p", "pending", state="queued")
        assert heard.get(timeout=5) == ""
        claim_ids(writer, limit=1)
        writer.update_task("p", "running", 1, state="retrying", not_before=time.time() - 1)
        assert heard.get(timeout=5) == "", "a retry already due, behind one due in an hour"


@contextmanager
def listening(url: str, open_store: Callable[[str], Store]) -> Iterator[tuple[Store, queue.SimpleQueue[str]]]:
    """A writing store, and what a listener on a second store of ``url`` hears (stopped and closed afterwards)."""
    writer = open_store(url)
    try:
        with self_listening(url, open_store) as (_, heard):
            yield writer, heard
    finally:
        writer.close()


@contextmanager
def self_listening(url: str, open_store: Callable[[str], Store]) -> Iterator[tuple[Store, queue.SimpleQueue[str]]]:
    """A store of ``url`` and what its own listener hears (stopped and closed afterwards)."""
    store = open_store(url)
    heard: queue.SimpleQueue[str] = queue.SimpleQueue()
    stop = store.listen(heard.put)  # type: ignore[attr-defined]
    try:  # a listener calls back once when it listens (from its own thread, a moment later): from then on it hears
        assert heard.get(timeout=10) == "", "the listener never began to listen"
        yield store, heard
    finally:
        stop()
        store.close()


@pytest.mark.postgres
def test_postgres_notifies_listeners_when_work_becomes_claimable(
    postgres_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    with listening(postgres_url, open_store) as (writer, heard):
        writer.insert_tasks([make_task("p", state="pending")])
        writer.insert_tasks([make_task("q1", queue="reports"), make_task("q2", queue="reports")])
        assert heard.get(timeout=5) == "reports", "one notification per queue and transaction"
        writer.insert_tasks([make_task("solo", queue="solo")])  # one statement, its own transaction
        assert heard.get(timeout=5) == "solo"
        writer.update_task("p", "pending", state="queued", queue="other")
        assert heard.get(timeout=5) == "other"
        writer.claim_tasks("w", NOW, 60.0, limit=1, queues=["reports"])
        writer.update_task("q1", "running", 1, state="retrying", not_before=NOW + 5)
        assert heard.get(timeout=5) == "reports"
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.3)  # a claim and a pending insert notify nobody
        writer.set_queue_limit("reports", 1)
        assert heard.get(timeout=5) == "reports", "a changed limit may make room"
        writer.claim_tasks("w", NOW, 60.0, limit=1, queues=["reports"])
        writer.update_task("q2", "running", 1, state="success")
        assert heard.get(timeout=5) == "reports", "a task of a limited queue stopped running: room for another"


@pytest.mark.postgres
def test_without_any_queue_limit_a_task_that_stops_running_sends_no_notify(
    postgres_url: str,
    open_store: Callable[[str], Store],
    make_task: Callable[..., TaskRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with listening(postgres_url, open_store) as (writer, heard):
        writer.insert_tasks([make_task("a", queue="reports"), make_task("b", queue="reports")])
        assert heard.get(timeout=5) == "reports"
        writer.claim_tasks("w", NOW, 60.0, limit=2, queues=["reports"])
        sent: list[str] = []  # what goes with each COMMIT (the NOTIFY statement would)
        direct = writer._direct  # type: ignore[attr-defined]
        commit_with = direct.commit_with
        monkeypatch.setattr(direct, "commit_with", lambda conn, writes: (
            sent.extend(str(statement) for statement, _ in writes), commit_with(conn, writes)))  # fmt: skip
        writer.update_task("a", "running", 1, state="success")  # no limit anywhere: nobody waits for room
        assert not any("pg_notify" in statement for statement in sent), "no NOTIFY statement: it would find nothing"
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.3)
        writer.set_queue_limit("reports", 5)  # seen at once by the store that set it
        assert heard.get(timeout=5) == "reports"
        writer.update_task("b", "running", 1, state="success")
        assert heard.get(timeout=5) == "reports", "now a limited queue: room announced"


@pytest.mark.postgres
def test_a_limit_set_by_another_process_is_claimed_behind_once_its_notification_is_heard(
    postgres_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    other = open_store(postgres_url)
    try:
        with self_listening(postgres_url, open_store) as (worker, heard):
            assert claim_ids(worker) == []  # the worker has looked: no limit anywhere
            other.set_queue_limit("gpu", 1)
            assert heard.get(timeout=5) == "gpu"
            other.insert_tasks([make_task("g1", queue="gpu"), make_task("g2", queue="gpu")])
            # without the notification the worker would go on believing there is no limit for up to a second, and
            # its claim would not look behind one (the claim of unlimited work finds nothing while any limit exists)
            assert claim_ids(worker) == ["g1"], "claimed within the new limit at once"
    finally:
        other.close()


@pytest.mark.postgres
def test_work_made_claimable_and_claimed_in_one_transaction_is_not_announced(
    postgres_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    with listening(postgres_url, open_store) as (writer, heard):
        writer.insert_tasks([make_task(n, state="pending", queue="chain") for n in ("a", "b", "c")])
        writer.update_task("a", "pending", state="queued")
        assert heard.get(timeout=5) == "chain", "released and left for anyone: announced"
        with writer.atomic():  # a worker's report: the next step released and taken by the same transaction
            writer.update_task("b", "pending", state="queued")
            assert sorted(claim_ids(writer, limit=2, queues=["chain"])) == ["a", "b"]
        with writer.atomic():
            writer.update_task("c", "pending", state="queued")
            claim_ids(writer, limit=1, queues=["other"])
        assert heard.get(timeout=5) == "chain", "c is still claimable"
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.3)  # and nothing was said of b


@pytest.mark.postgres
def test_a_listener_skips_work_its_own_store_announced_but_not_room(
    postgres_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    with self_listening(postgres_url, open_store) as (store, heard):
        store.insert_tasks([make_task("mine", queue="reports")])  # its engine already woke its own workers
        store.set_queue_limit("reports", 1)
        got = [heard.get(timeout=5)]
        while True:
            try:
                got.append(heard.get(timeout=0.3))
            except queue.Empty:
                break
        assert [q for q in got if q != "warm-up"] == ["reports"], "the insert's notification was skipped"
