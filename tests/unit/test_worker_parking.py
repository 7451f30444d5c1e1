"""On SQLite, outcomes the runners report while this process queues tasks are applied in the queueing transaction
(unified.worker_parking), and reports and lease renewals take turns (unified.lease_guard)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.workers import wait_until
from unified.engine import Engine
from unified.errors import StoreError
from unified.lease_guard import LeaseGuard
from unified.store.sql import SqlStore
from unified.task import Task
from unified.task_manager import TaskManager
from unified.worker import WorkerPool
from unified.worker_parking import MOST_APPLIED, ParkedOutcomes


def forty_two() -> int:
    """The answer."""
    return 42


class Applying:
    """Makes the next queueing transaction wait, before it applies what is parked, until an outcome is parked; and
    notes what that transaction applied."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.applied: list[Any] = []
        apply = ParkedOutcomes.apply

        def waiting_apply(parking: ParkedOutcomes) -> None:
            if not self.armed:
                apply(parking)
                return
            self.armed = False
            wait_until(lambda: parking._parked, 5, "an outcome parked for the queueing transaction", 0.002)
            apply(parking)
            self.applied = list(getattr(parking._thread, "applied", None) or [])

        monkeypatch.setattr(ParkedOutcomes, "apply", waiting_apply)


@pytest.fixture
def applying(monkeypatch: pytest.MonkeyPatch) -> Applying:
    return Applying(monkeypatch)


@pytest.fixture
def tm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskManager]:
    # no lease renewals: one under way leaves the parked outcomes to the reporter (see ParkedOutcomes.apply), and the
    # pool's first beat comes as it starts, when it could meet the transaction a test arranges
    monkeypatch.setattr(WorkerPool, "heartbeat", lambda pool: None)
    with TaskManager(store=f"sqlite:///{tmp_path / 'parking.db'}", max_workers=1) as manager:
        yield manager


def committers(tm: TaskManager) -> dict[str, list[str]]:
    """Task id -> the threads that published its success, each once it committed the outcome."""
    found: dict[str, list[str]] = {}
    tm.engine.bus.subscribe(
        lambda event: found.setdefault(event["task_id"], []).append(threading.current_thread().name),
        ["task_succeeded"],
    )
    return found


def test_an_outcome_reported_while_a_task_is_queued_is_committed_by_the_queueing_transaction(
    tm: TaskManager, applying: Applying
) -> None:
    by = committers(tm)
    first = tm.queue_task(forty_two)  # claimed in its queueing transaction; runs once that commits
    applying.armed = True
    second = tm.queue_task(forty_two)  # open while the first one's outcome arrives
    assert tm.store.get_task(first).state == "success", "committed with the second task, before queue_task returned"
    assert by[first] == ["MainThread"]
    assert tm.pool is not None and first not in tm.pool._held, "the pool no longer holds the lease of what it ran"
    assert tm.wait(second, timeout=5)["result"] == 42
    assert tm.wait(first, timeout=5)["history"][0]["state"] == "success"


class Warnings(logging.Handler):
    """The messages of the warnings ``unified.worker`` logs meanwhile, caught on that logger itself: the ``unified``
    logger may not propagate to pytest's handler (``configure_logging``, called in-process by an earlier test)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def worker_warnings() -> Iterator[Warnings]:
    logger, handler = logging.getLogger("unified.worker"), Warnings()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_an_outcome_that_fails_to_apply_there_goes_to_the_reporter_and_the_queueing_goes_on(
    tm: TaskManager, applying: Applying, monkeypatch: pytest.MonkeyPatch, worker_warnings: Warnings
) -> None:
    by = committers(tm)
    complete_all = Engine.complete_all

    def failing_in_the_queueing_thread(engine: Engine, reports: Any) -> None:
        complete_all(engine, reports)  # its writes, and the events and attempt ends it left for the commit
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("applying broke (the test's)")

    monkeypatch.setattr(Engine, "complete_all", failing_in_the_queueing_thread)
    first = tm.queue_task(forty_two)
    applying.armed = True
    second = tm.queue_task(forty_two)
    assert any("the reporter applies them" in message for message in worker_warnings.messages)
    assert tm.wait(second, timeout=5)["result"] == 42
    done = tm.wait(first, timeout=5)
    assert done["result"] == 42 and [a["state"] for a in done["history"]] == ["success"]
    assert by[first] == ["unified-reporter"], "what the failed attempt left for the commit was undone with it"


def test_an_outcome_applied_in_a_queueing_transaction_that_fails_goes_to_the_reporter(
    tm: TaskManager, applying: Applying, monkeypatch: pytest.MonkeyPatch
) -> None:
    by = committers(tm)
    claim_more = WorkerPool._claim_more
    failing = threading.Event()

    def failing_once(pool: WorkerPool) -> Any:
        if failing.is_set():
            failing.clear()
            raise StoreError("the claim broke (the test's)")
        return claim_more(pool)

    monkeypatch.setattr(WorkerPool, "_claim_more", failing_once)
    first = tm.queue_task(forty_two)
    applying.armed = True
    failing.set()
    with pytest.raises(StoreError, match="the claim broke"):
        tm.queue_task(forty_two, task_id="never-stored")
    assert [record.id for record, _, _ in applying.applied] == [first], "applied there, then rolled back with it"
    assert tm.wait(first, timeout=5)["result"] == 42
    assert by[first] == ["unified-reporter"]
    assert tm.store.get_tasks(["never-stored"]) == []


def test_only_a_queue_task_in_a_transaction_of_its_own_opens_a_queueing_transaction(tm: TaskManager) -> None:
    marks: list[bool] = []
    tm.engine.on_queueing(marks.append)
    tm.wait(tm.queue_task(forty_two), timeout=5)
    with tm.batch():
        inside = tm.queue_task(forty_two)
    tm.wait(inside, timeout=5)
    assert marks == [True, False], "only a transaction of its own: a caller's commits when the caller says"


def run_in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_reports_run_together_and_a_renewal_waits_for_them_and_holds_new_ones_back() -> None:
    guard = LeaseGuard()
    renewed = threading.Event()
    assert guard.try_report() and guard.try_report(), "reports do not wait for each other"

    def renew() -> None:
        with guard.renewing():
            renewed.set()

    renewal = run_in_thread(renew)
    wait_until(lambda: guard._renewal, 5, "the renewal waiting")
    assert not renewed.is_set(), "it waits for the reports under way"
    assert not guard.try_report(), "a waiting renewal holds new reports back"
    guard.end_report()
    assert not renewed.is_set()
    guard.end_report()
    renewal.join(5)
    assert renewed.is_set() and guard.try_report()
    guard.end_report()


def test_a_report_waits_for_a_renewal_under_way() -> None:
    guard = LeaseGuard()
    reported = threading.Event()
    with guard.renewing():

        def report() -> None:
            with guard.reporting():
                reported.set()

        reporter = run_in_thread(report)
        assert not reported.wait(0.05), "held back while the leases are renewed"
    reporter.join(5)
    assert reported.is_set()


def test_one_queueing_transaction_applies_at_most_a_batch_and_the_rest_go_to_the_reporter(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'cap.db'}")
    engine = Engine(store)
    engine.submit([Task(task_id=f"t{i}", func=forty_two) for i in range(MOST_APPLIED + 10)])
    reports = [(record, "success", {"result": 42}) for record in engine.claim("w", MOST_APPLIED + 10)]
    to_reporter: list[Any] = []
    parking = ParkedOutcomes(engine, LeaseGuard(), to_reporter.append, lambda applied: None)
    parking.queueing(True)
    try:
        assert all(parking.park(report) for report in reports)
        with engine.batch():
            parking.apply()
    finally:
        parking.queueing(False)
    states = [r.state for r in store.get_tasks([f"t{i}" for i in range(MOST_APPLIED + 10)])]
    assert states.count("success") == MOST_APPLIED and len(to_reporter) == 10
    assert not parking.park(reports[0]), "nothing is parked once no queueing transaction is open"
    store.close()
