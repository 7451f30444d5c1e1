"""The worker pool: graceful stop hands back unfinished work, late reports are fenced out, lost leases stop work."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.workers import wait_until
from unified import worker as worker_module
from unified import worker_leases
from unified.engine import Engine
from unified.errors import ConflictError, StoreConflict, StoreError, ValidationError
from unified.store.memory import MemoryStore
from unified.task import Task, TaskContext
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.worker import WorkerPool
from unified.workflow.workflow import WorkflowManager


def test_stop_hands_back_a_running_task_without_spending_a_retry() -> None:
    store = MemoryStore()
    started, release = threading.Event(), threading.Event()

    def slow(ctx: TaskContext) -> str:
        started.set()
        while not ctx.cancelled and not release.wait(0.01):
            pass
        return f"attempt {ctx.attempt}"

    first = TaskManager(store=store, max_workers=1)
    task_id = first.queue_task(slow, max_retries=0)
    assert started.wait(5)
    first.pool.stop(wait=True, timeout=0.1)
    record = store.get_task(task_id)
    assert record.state == "queued"
    assert [a.state for a in store.list_attempts(task_id)] == ["handed_back"]

    release.set()
    second = TaskManager(store=store, max_workers=1, engine=first.engine)
    assert second.get_result(task_id, timeout=5) == "attempt 2"
    assert [a.state for a in store.list_attempts(task_id)] == ["handed_back", "success"]
    second.shutdown()


def test_shutdown_gives_running_attempts_its_timeout_then_hands_them_back() -> None:
    store = MemoryStore()
    manager = TaskManager(store=store, max_workers=1)
    # by import path: a lambda's task would be canceled at shutdown instead, as no other process could run it
    task_id = manager.queue_task("tests.helpers.tasks:wait_for_cancel", kwargs={"seconds": 5})
    wait_until(lambda: store.get_task(task_id).state == "running", 5, "the task to start")
    with pytest.raises(ValidationError, match="timeout must be a finite number of 0 or more"):
        manager.shutdown(timeout=-1)
    manager.shutdown(wait=True, timeout=0.1)  # the default of 10 s would keep this test waiting that long
    assert store.get_task(task_id).state == "queued"
    assert [a.state for a in store.list_attempts(task_id)] == ["handed_back"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_shut_down_manager_refuses_new_work_and_says_to_make_a_new_one(kind: str, tmp_path: Path) -> None:
    manager = TaskManager(store="memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'shut.db'}")
    workflows = WorkflowManager(task_manager=manager)
    workflow_id = workflows.register_workflow("w")
    workflows.add_task_to_workflow(workflow_id, Task(task_id="a", func=print))
    failed = manager.queue_task(lambda: 1 / 0)
    manager.wait(failed, timeout=5)
    run_id = workflows.start_workflow(workflow_id)
    workflows.wait_run(run_id, timeout=5)
    schedule_id = manager.schedule_task(print, interval_seconds=60)
    manager.shutdown()
    calls = {
        "queue_task": lambda: manager.queue_task(print),
        "schedule_task": lambda: manager.schedule_task(print, interval_seconds=60),
        "retry_task": lambda: manager.retry_task(failed),
        "backfill": lambda: manager.backfill(schedule_id, 0, 1),
        "start_workflow": lambda: workflows.start_workflow(workflow_id),
        "run_workflow": lambda: workflows.run_workflow(workflow_id, timeout=5),
        "schedule_workflow": lambda: workflows.schedule_workflow(workflow_id, interval_seconds=60),
        "retry_run": lambda: workflows.retry_run(run_id),
    }
    for name, call in calls.items():
        with pytest.raises(ConflictError, match=r"was shut down .*create a new TaskManager"):
            call()
            pytest.fail(f"{name} took work on a shut-down manager")


def test_a_late_report_after_lease_expiry_is_refused() -> None:
    clock = FakeClock()
    engine = Engine(MemoryStore(), clock)
    pool = WorkerPool(engine, max_workers=0, lease_seconds=30, heartbeat_seconds=10)
    engine.submit([Task(task_id="t", func=lambda: "late", max_retries=1)])
    (record,) = engine.claim("slow-worker", lease_seconds=30)
    clock.advance(31)
    assert engine.expire_leases() == 1  # another process's heartbeat takes the task back
    assert pool.run_until_idle() == 1  # and runs it again: attempt 2 succeeds
    engine.complete(record, "success", result="late")  # the first worker finally reports attempt 1
    task = engine.store.get_task("t")
    assert (task.state, task.attempts) == ("success", 2)
    assert [a.state for a in engine.store.list_attempts("t")] == ["lost", "success"]


class FlakyStore(MemoryStore):
    """A memory store whose lease renewals fail while ``down`` is set."""

    down = False

    def extend_leases(self, worker: str, leases: dict[str, int], until: float) -> list[str]:
        if self.down:
            raise StoreError("database unreachable")
        return super().extend_leases(worker, leases, until)


def test_a_worker_that_cannot_renew_its_lease_stops_its_attempts() -> None:
    store = FlakyStore()
    started, stopped = threading.Event(), threading.Event()

    def cooperative(ctx: TaskContext) -> None:
        started.set()
        while not ctx.cancelled:
            if stopped.wait(0.01):
                return
        stopped.set()

    with TaskManager(store=store, max_workers=1, lease_seconds=0.3, heartbeat_seconds=0.05) as tm:
        tm.queue_task(cooperative)
        assert started.wait(5)
        store.down = True
        assert stopped.wait(5), "the attempt kept running after its lease could not be renewed"
        store.down = False


class DeadlockOnceEngine(Engine):
    """An engine whose first report transaction the database aborts to break a deadlock."""

    aborted = 0

    def complete_all(self, reports: list[Any]) -> None:
        if not self.aborted:
            self.aborted += 1
            raise StoreConflict("aborted to break a deadlock")
        super().complete_all(reports)


def test_a_report_aborted_to_break_a_deadlock_is_applied_again_at_once() -> None:
    engine = DeadlockOnceEngine(MemoryStore())
    engine.submit([Task(task_id="t", func="tests.helpers.tasks:add", args=(1, 2))])
    pool = WorkerPool(engine, max_workers=0)
    waits: list[float] = []
    pool._stopping.wait = lambda seconds=None: waits.append(seconds) or False  # type: ignore[method-assign]
    assert pool.run_until_idle() == 1
    assert engine.aborted == 1 and engine.store.get_task("t").state == "success"
    assert waits == [], "no backoff before running an aborted transaction again"


class CountingEngine(Engine):
    """An engine that records how many tasks each claim took."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self.claims: list[int] = []

    def claim(self, *args: Any, **kwargs: Any) -> list[Any]:
        claimed = super().claim(*args, **kwargs)
        if claimed:
            self.claims.append(len(claimed))
        return claimed


def test_a_pool_that_claims_ahead_still_runs_in_priority_order() -> None:
    engine = CountingEngine(MemoryStore())
    order: list[int] = []
    priorities = [(7 * i) % 11 for i in range(40)]
    engine.submit(
        [Task(task_id=f"t{i}", func=lambda p=p: order.append(p), priority=p) for i, p in enumerate(priorities)]
    )
    pool = WorkerPool(engine, max_workers=1, prefetch=15)
    pool.start()
    try:
        deadline = time.monotonic() + 5
        while len(order) < 40 and time.monotonic() < deadline:
            engine.wait_for_change(engine.finished_generation, 0.05)
    finally:
        pool.stop()
    assert order == sorted(priorities, reverse=True)
    assert max(engine.claims) == 16, "one claim takes the idle runner's task and 15 ahead"


def test_claiming_ahead_adapts_to_how_long_attempts_take() -> None:
    engine = CountingEngine(MemoryStore())
    engine.submit([Task(task_id=f"t{i}", func=lambda: None) for i in range(300)])
    with TaskManager(store=engine.store, engine=engine, max_workers=2) as tm:
        tm.wait("t299", timeout=5)
    assert engine.claims[0] <= 2, "nothing is claimed ahead before an attempt was timed"
    assert max(engine.claims) > 2, "short attempts are claimed ahead"


def test_stop_hands_back_tasks_claimed_ahead_and_not_started() -> None:
    store = MemoryStore()
    engine = Engine(store)
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def gate() -> None:
        started.set()
        release.wait(5)

    engine.submit([Task(task_id="gate", func=gate, priority=9)])
    engine.submit([Task(task_id=f"t{i}", func=lambda i=i: ran.append(i)) for i in range(5)])
    pool = WorkerPool(engine, max_workers=1, prefetch=5)
    pool.start()
    assert started.wait(5)
    assert all(store.get_task(f"t{i}").state == "running" for i in range(5)), "claimed ahead with the gate"
    pool.stop(wait=True, timeout=0.2)
    release.set()
    assert ran == []
    for i in range(5):
        assert store.get_task(f"t{i}").state == "queued"
        assert [a.state for a in store.list_attempts(f"t{i}")] == ["handed_back"]


def test_on_sqlite_a_started_pool_claims_in_the_queueing_transaction(tmp_path: Path) -> None:
    release = threading.Event()
    with TaskManager(store=f"sqlite:///{tmp_path / 'claims.db'}", max_workers=1) as tm:
        task_id = tm.queue_task(release.wait, args=(5,))
        state = tm.store.get_task(task_id).state  # read as soon as queue_task returns: no dispatcher was needed
        release.set()
        tm.wait(task_id, timeout=5)
    assert state == "running"


def test_a_batch_on_sqlite_is_claimed_once_at_commit_for_the_idle_runners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed: list[int] = []
    claim = Engine.claim

    def counting(self: Engine, *args: Any, **kwargs: Any) -> list[Any]:
        records = claim(self, *args, **kwargs)
        if threading.current_thread() is threading.main_thread():  # the batch's commit (the dispatcher may look too)
            claimed.append(len(records))
        return records

    monkeypatch.setattr(Engine, "claim", counting)
    gate = threading.Event()
    with TaskManager(store=f"sqlite:///{tmp_path / 'batch.db'}", max_workers=2) as tm:
        with tm.batch():
            ids = [tm.queue_task(gate.wait, args=(5,)) for _ in range(50)]
        in_batch = sum(claimed)
        gate.set()
        tm.wait_all(ids, timeout=10)
    assert in_batch == 2, "the two idle runners' tasks, not one claim per queued task (which took all 50)"


def test_an_outcome_queued_while_another_runner_reports_is_applied_by_that_runner() -> None:
    store = MemoryStore()
    engine = Engine(store)
    engine.submit([Task(task_id="t", func=lambda: 42)])
    pool = WorkerPool(engine, max_workers=1)
    assert pool._reporting.acquire(), "as if another runner were applying outcomes"
    pool.start()
    try:
        deadline = time.monotonic() + 5
        while pool._reports.empty() or pool._busy:  # queued, and the runner went on without waiting for the lead
            assert time.monotonic() < deadline, "the runner never left its outcome to the leader"
            time.sleep(0.005)
        assert store.get_task("t").state == "running", "not applied by the runner that did not lead"
    finally:
        pool._reporting.release()
    pool._lead_reports()  # the leader looks at the queue again once it lets go of the lead
    assert store.get_task("t").state == "success" and store.get_task("t").result == 42
    pool.stop()


def test_an_outcome_held_back_for_the_next_claimed_task_is_applied_while_that_task_runs_long() -> None:
    store = MemoryStore()
    engine = Engine(store)
    started, release = threading.Event(), threading.Event()

    def gate() -> None:
        started.set()
        release.wait(10)

    engine.submit([Task(task_id="quick", func=lambda: 1, priority=9), Task(task_id="gate", func=gate)])
    pool = WorkerPool(engine, max_workers=1, prefetch=5)  # both claimed at once: gate waits while quick runs
    pool.start()
    try:
        assert started.wait(5)
        # the runner went on to gate with quick's outcome queued; the dispatcher applies it after REPORT_DELAY
        wait_until(lambda: store.get_task("quick").state == "success", 5, "quick's outcome applied")
        assert store.get_task("gate").state == "running"
    finally:
        release.set()
        pool.stop()
    assert store.get_task("gate").state == "success"


def test_outcomes_of_runners_finishing_together_are_all_applied() -> None:
    store = MemoryStore()
    engine = Engine(store)
    together = threading.Barrier(4)
    engine.submit([Task(task_id=f"t{i}", func=lambda: together.wait(5)) for i in range(200)])
    with TaskManager(store=store, engine=engine, max_workers=4) as tm:
        records = tm.wait_all([f"t{i}" for i in range(200)], timeout=10)
    assert [r["state"] for r in records] == ["success"] * 200
    assert store.count_tasks_by_state() == {"success": 200}


def test_a_notification_wakes_a_pool_that_claimed_more_than_it_was_told_of() -> None:
    """A pool's reporting transactions claim work another process queued; a later notification still wakes it."""
    store = MemoryStore()
    other_process = Engine(store)  # its submissions reach the pool only through notifications
    pool = WorkerPool(Engine(store), max_workers=2, poll_seconds=60.0)
    pool.start()
    try:
        other_process.submit([Task(task_id=f"burst{i}", func=time.sleep, args=(0.02,)) for i in range(12)])
        pool._heard("")  # as the store's listener would: the runners' reports claim most of the burst
        wait_until(lambda: store.count_tasks_by_state() == {"success": 12}, 10, "the burst to run")
        other_process.submit([Task(task_id="later", func="tests.helpers.tasks:add", args=(1, 2))])
        pool._heard("")
        wait_until(lambda: store.get_task("later").state == "success", 5, "the later task to run (not at the poll)")
    finally:
        pool.stop()


def test_a_claim_in_a_reporting_transaction_does_not_swallow_a_later_wake_up() -> None:
    """The dispatcher took the wake-up for two tasks, then a reporting transaction claimed them: the wake-up for a
    task queued afterwards must still reach the dispatcher (it slept until its poll, up to a second in W1)."""
    engine = Engine(MemoryStore())
    pool = WorkerPool(engine, max_workers=2, poll_seconds=60.0)  # not started: the test plays the threads
    engine.submit([Task(task_id=f"first{i}", func="tests.helpers.tasks:add", args=(1, 2)) for i in range(2)])
    pool._idle_wait()  # the dispatcher takes the wake-up (it then finds the tasks taken)
    with engine.batch():  # a runner's reporting transaction claims them for its free room
        assert len(pool._claim_more()) == 2
    engine.submit([Task(task_id="later", func="tests.helpers.tasks:add", args=(1, 2))])
    dispatcher = threading.Thread(target=pool._idle_wait, daemon=True)
    dispatcher.start()
    dispatcher.join(5)
    try:
        assert not dispatcher.is_alive(), "the dispatcher slept through the wake-up for the later task"
    finally:
        pool.stop()


def test_the_heartbeat_hands_back_a_task_leased_to_the_pool_that_it_does_not_hold() -> None:
    """A claim whose commit the pool never saw confirmed (its answer was lost with the connection) leaves a task
    leased to the pool that no runner runs: the heartbeat puts it back in the queue before its lease lapses."""
    clock = FakeClock()
    engine = Engine(MemoryStore(), clock)
    pool = WorkerPool(engine, max_workers=0, lease_seconds=30, heartbeat_seconds=10)
    engine.submit([Task(task_id="orphan", func="tests.helpers.tasks:add", args=(1, 2))])
    engine.claim(pool.worker_id, lease_seconds=30)  # committed, but the pool never took it into its hands
    pool.heartbeat()
    assert engine.store.get_task("orphan").state == "running", "a fresh claim may still be on its way to the pool"
    clock.advance(21)  # two beats and more without a renewal: nobody in this pool holds it
    pool.heartbeat()
    record = engine.store.get_task("orphan")
    assert (record.state, record.lease_owner) == ("queued", None)
    (attempt,) = engine.store.list_attempts("orphan")
    assert attempt.state == "handed_back" and "answer was lost" in attempt.error["message"]
    assert pool.run_until_idle() == 1 and engine.store.get_task("orphan").result == 3, "the retry is not spent"


def test_on_sqlite_a_runner_alone_applies_its_outcome_and_runners_together_leave_theirs_to_the_reporter(
    tmp_path: Path,
) -> None:
    appliers: dict[str, str] = {}
    together = threading.Barrier(2)
    chain = [Task(task_id="c0", func=lambda: 0)] + [
        Task(task_id=f"c{i}", func=lambda: 0, dependencies=[f"c{i - 1}"]) for i in range(1, 5)
    ]
    with TaskManager(store=f"sqlite:///{tmp_path / 'appliers.db'}", max_workers=2) as tm:
        tm.engine.bus.subscribe(
            lambda event: appliers.setdefault(event["task_id"], threading.current_thread().name), ["task_succeeded"]
        )
        tm.engine.submit(chain)
        tm.wait("c4", timeout=10)
        tm.engine.submit([Task(task_id=f"p{i}", func=lambda: together.wait(5)) for i in range(2)])
        tm.wait_all(["p0", "p1"], timeout=10)
    # events are published by the thread that committed the outcome, once it committed
    assert all(appliers[f"c{i}"].startswith("unified-runner-") for i in range(5)), appliers
    assert "unified-reporter" in (appliers["p0"], appliers["p1"]), "the first of the two saw the other one running"


class FailingOnceEngine(Engine):
    """An engine whose ``method`` raises an error no worker loop expects, the first time it is called."""

    def __init__(self, store: MemoryStore, method: str) -> None:
        super().__init__(store)
        self.failed = False
        original = getattr(self, method)

        def fail_once(*args: Any, **kwargs: Any) -> Any:
            if not self.failed:
                self.failed = True
                raise RuntimeError(f"{method} broke (the test's)")
            return original(*args, **kwargs)

        setattr(self, method, fail_once)


def test_a_dispatcher_that_meets_an_unexpected_error_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    engine = FailingOnceEngine(MemoryStore(), "claim")
    with TaskManager(engine=engine, max_workers=1) as tm:
        task_id = tm.queue_task(lambda: "ran")
        assert tm.wait(task_id, timeout=10)["result"] == "ran"
    assert engine.failed
    (record,) = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert "unified-dispatcher failed; starting it again" in record.getMessage() and record.exc_info is not None


def test_a_report_that_meets_an_unexpected_error_lets_the_lease_lapse_and_the_task_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FailingOnceEngine(MemoryStore(), "complete_all")
    with TaskManager(engine=engine, max_workers=1, lease_seconds=0.5, heartbeat_seconds=0.05) as tm:
        task_id = tm.queue_task(lambda: "ran")
        meta = tm.wait(task_id, timeout=10)
        assert meta["state"] == "success" and meta["attempts"] == 2, "the first attempt's outcome was lost"
        assert tm.pool is not None and tm.pool._busy == 0 and not tm.pool._held, "nothing left counted or held"
    assert any("unified-runner-0 failed" in r.getMessage() for r in caplog.records if r.levelname == "CRITICAL")


class UnreachableForPrepare(Engine):
    """An engine whose store cannot be reached when an attempt loads its task."""

    def prepare(self, record: Any, cancel_event: Any) -> Any:
        raise StoreError("the store is away (the test's)")


def test_an_attempt_given_up_without_a_report_leaves_nothing_behind_in_the_engine() -> None:
    engine = UnreachableForPrepare(MemoryStore())
    with TaskManager(engine=engine, max_workers=1) as tm:
        task_id = tm.queue_task(lambda: "never")
        wait_until(lambda: tm.store.get_task(task_id).state == "running", 5, "the task to be claimed")
        assert engine.cancel_task(task_id)  # the attempt waiting for the store stops, with nothing to report
        assert tm.pool is not None
        wait_until(lambda: not tm.pool._held, 5, "the pool to let go of the attempt")
        assert task_id not in engine._cancel_events and task_id not in engine._attempt_started


def test_a_task_claimed_ahead_records_when_its_code_began_not_when_it_was_claimed() -> None:
    clock = FakeClock()
    engine = Engine(MemoryStore(), clock)
    gate, started = threading.Event(), threading.Event()

    def first() -> None:
        started.set()
        gate.wait(5)

    engine.submit([Task(task_id="first", func=first, priority=1), Task(task_id="second", func=int)])
    pool = WorkerPool(engine, max_workers=1, prefetch=1)  # claims "second" with "first", ahead
    pool.start()
    try:
        assert started.wait(5)
        clock.advance(60)  # "second" waits in the buffer a minute
        gate.set()
        wait_until(lambda: engine.store.get_task("second").state == "success", 5, "the second task's end")
    finally:
        pool.stop()
    task = engine.store.get_task("second")
    (attempt,) = engine.store.list_attempts("second")
    assert task.started_at == attempt.started_at == clock.now(), "after its minute in the buffer, not at the claim"


def test_tasks_claimed_ahead_of_attempts_that_run_long_are_handed_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    url = f"sqlite:///{tmp_path}/ahead.db"
    with TaskManager(store=url, max_workers=1, run_scheduler=False) as tm:
        try:
            tm.wait_all([tm.queue_task("tests.helpers.tasks:add", args=(i, 1)) for i in range(50)], timeout=10)
            assert tm.pool._prefetch() > 5  # instant tasks: the pool claims many ahead
            with tm.batch():  # queued together: the next claim takes them all
                slow = [tm.queue_task(gate.wait, args=(10,)) for _ in range(6)]
            wait_until(lambda: sum(tm.get_task_metadata(t)["state"] == "running" for t in slow) == 6, 5, "claimed")
            monkeypatch.setattr(worker_leases, "HOARD_SECONDS", 0.0)  # the first one has run long enough
            monkeypatch.setattr(worker_module, "PREFETCH_SECONDS", 0.0)  # and claims no more ahead meanwhile
            tm.pool.heartbeat()
            states = [tm.get_task_metadata(t)["state"] for t in slow]
            assert states.count("running") == 1 and states.count("queued") == 5  # for any worker to take
            history = tm.get_task_metadata(next(t for t, s in zip(slow, states, strict=True) if s == "queued"))[
                "history"
            ]
            assert [a["state"] for a in history] == ["handed_back"]
        finally:
            gate.set()
        assert all(m["state"] == "success" for m in tm.wait_all(slow, timeout=10))
