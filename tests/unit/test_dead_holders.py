"""Tasks whose function only one engine holds (lambdas, closures) when that engine's process dies without shutting
down: its proof of life in the store expires, and the heartbeat of another engine's worker pool cancels what it held
and what is not running, saying why; a live holder, even one that pauses, loses nothing; a holder presumed dead that
comes back says so."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.postgres import postgres_schema_url
from unified.engine import Engine
from unified.interventions import HOLDER_SECONDS
from unified.store.base import Store
from unified.store.memory import MemoryStore
from unified.store.sql import SqlStore
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.worker import WorkerPool
from unified.workflow.workflow import Workflow, WorkflowManager

START = 1_767_225_600.0


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One store that several engines share, as processes share a database."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        with SqlStore(f"sqlite:///{tmp_path}/holders.db") as opened:
            yield opened
    else:
        with postgres_schema_url() as url, SqlStore(url) as opened:
            yield opened


def sweeper(store: Store, clock: FakeClock) -> WorkerPool:
    """Another process's worker pool, whose heartbeat the test beats by hand."""
    return WorkerPool(Engine(store, clock), max_workers=0)


def fails(n: int) -> int:
    """A task that always fails."""
    raise RuntimeError(f"no {n}")


def test_what_a_dead_holder_held_is_canceled_once_its_proof_expires_saying_why(store: Store) -> None:
    dead = Engine(store, FakeClock(START))  # its process is killed: it never renews
    (retrying,) = dead.submit([Task(func=lambda: fails(1), max_retries=1, retry_delay_seconds=3600, priority=5)])
    WorkerPool(dead, max_workers=0).run_once()  # fails once: retrying in an hour
    queued, pending = dead.submit([Task(task_id="a", func=lambda: 1), Task(task_id="b", func=lambda x: x,
                                                                          dependencies=["a"])])  # fmt: skip
    (anyone,) = dead.submit([Task(func="tests.helpers.tasks:add", args=(1, 2))])
    held = {queued: "queued", pending: "pending", retrying: "retrying"}
    assert {t: store.get_task(t).state for t in held} == held
    clock = FakeClock(START)
    pool = sweeper(store, clock)
    clock.advance(HOLDER_SECONDS - 1)
    pool.heartbeat()
    assert {t: store.get_task(t).state for t in held} == held  # its proof has not expired yet
    clock.advance(2)
    pool.heartbeat()
    records = store.get_tasks(held)
    assert {r.state for r in records} == {"canceled"}  # newest first: `b` is canceled, not skipped by `a`
    assert all(dead.functions.holder in r.reason and "stopped proving it is alive" in r.reason
               and "@unified.task" in r.reason for r in records)  # fmt: skip
    assert store.get_task(anyone).state == "queued"  # any worker can run that one: untouched
    assert store.expired_holders(clock.now() + 10**6) == []  # nothing it held is unfinished: its proof is gone


def test_a_live_holder_without_a_pool_loses_nothing_however_long_it_waits(store: Store) -> None:
    clock = FakeClock(START)
    holder = TaskManager(store=store, max_workers=0, clock=clock)  # renews its proof as its clock advances
    task_id = holder.queue_task(lambda: "ran")
    pool = sweeper(store, clock)
    for _ in range(30):  # an hour, in steps of the proof's whole margin
        clock.advance(HOLDER_SECONDS)
        pool.heartbeat()
    assert store.get_task(task_id).state == "queued"
    assert holder.run_until_idle() == 1 and holder.get_result(task_id) == "ran"
    holder.shutdown()


def test_a_holders_pool_heartbeat_renews_its_proof_until_it_stops(store: Store) -> None:
    clock = FakeClock(START)
    engine = Engine(store, clock)  # renews only through its pool's heartbeat
    holder_pool = WorkerPool(engine, max_workers=0)
    (task_id,) = engine.submit([Task(func=lambda: 1)])
    pool = sweeper(store, clock)
    for _ in range(10):
        clock.advance(HOLDER_SECONDS / 2)
        holder_pool.heartbeat()
        pool.heartbeat()
    assert store.get_task(task_id).state == "queued"
    clock.advance(HOLDER_SECONDS + 1)  # its heartbeat stopped (the process froze, or died)
    pool.heartbeat()
    assert store.get_task(task_id).state == "canceled"


def test_a_run_whose_held_tasks_are_canceled_settles(store: Store) -> None:
    dead = TaskManager(store=store, max_workers=0, clock=FakeClock(START))  # killed: never shut down, never advanced
    workflows = WorkflowManager(task_manager=dead)
    workflow = Workflow("notebook", tasks=[
        Task(task_id="load", func=lambda: [1, 2]),
        Task(task_id="total", func=lambda: 3, dependencies=["load"]),
        Task(task_id="report", func="tests.helpers.tasks:add", args=(1, 2), dependencies=["total"]),
    ])  # fmt: skip
    run_id = workflows.start_workflow(workflows.register(workflow))
    clock = FakeClock(START + HOLDER_SECONDS + 1)
    assert sweeper(store, clock).engine.expire_holders() == 2
    states = {r.task_id: r.state for r in store.run_tasks(run_id)}
    assert states == {"load": "canceled", "total": "canceled", "report": "skipped"}
    assert store.get_run(run_id).state == "canceled"  # settled: a schedule's max_active_runs no longer waits on it


def test_a_holder_presumed_dead_keeps_its_running_attempts_and_says_so_when_it_comes_back(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(START)
    engine = Engine(store, clock)  # a bare engine: nothing renews its proof unless the test does
    running, waiting = engine.submit(
        [Task(task_id="r", func=lambda: "done", priority=1), Task(task_id="w", func=lambda: 0)]
    )
    (claimed,) = engine.claim("its-pool", lease_seconds=10 * HOLDER_SECONDS)  # its attempt's lease is not at stake
    clock.advance(HOLDER_SECONDS + 1)  # a laptop asleep
    sweeping = Engine(store, clock)
    assert sweeping.expire_holders() == 1
    assert (store.get_task(waiting).state, store.get_task(running).state) == ("canceled", "running")
    assert store.expired_holders(clock.now()) == [engine.functions.holder]  # kept while what it runs is unfinished
    with caplog.at_level(logging.ERROR, "unified.engine"):
        engine.renew_holder()  # it wakes up
    assert "presumed it dead and canceled the tasks it held" in caplog.text
    engine.complete(claimed, "success", result="done")
    assert store.get_task(running).state == "success"
    (later,) = engine.submit([Task(func=lambda: 3)])
    clock.advance(HOLDER_SECONDS / 2)
    assert sweeping.expire_holders() == 0 and store.get_task(later).state == "queued"  # alive again


def test_a_holder_that_slept_through_a_sweep_says_so_at_its_next_submit(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(START)
    engine = Engine(store, clock)
    (first,) = engine.submit([Task(func=lambda: 1)])
    clock.advance(HOLDER_SECONDS + 1)
    assert Engine(store, clock).expire_holders() == 1
    assert store.expired_holders(clock.now()) == []  # nothing left unfinished: the proof is gone
    with caplog.at_level(logging.ERROR, "unified.engine"):
        (second,) = engine.submit([Task(func=lambda: 2)])  # proved alive again with the new task
    assert "presumed it dead" in caplog.text
    clock.advance(HOLDER_SECONDS - 1)
    assert Engine(store, clock).expire_holders() == 0
    assert (store.get_task(first).state, store.get_task(second).state) == ("canceled", "queued")


def test_a_holder_shutting_down_cancels_what_it_held_and_drops_its_proof(store: Store) -> None:
    clock = FakeClock(START)
    holder = TaskManager(store=store, max_workers=0, clock=clock)
    task_id = holder.queue_task(lambda: 1)
    later = START + HOLDER_SECONDS + 1
    assert store.expired_holders(later) == [holder.engine.functions.holder]
    holder.shutdown()
    assert store.get_task(task_id).state == "canceled" and store.expired_holders(later) == []


def test_an_engine_that_holds_nothing_writes_no_proof(store: Store) -> None:
    clock = FakeClock(START)
    engine = Engine(store, clock)
    engine.submit([Task(func="tests.helpers.tasks:add", args=(1, 2))])
    engine.renew_holder()
    assert store.expired_holders(START + 10 * HOLDER_SECONDS) == []
