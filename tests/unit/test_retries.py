"""Retries with exponential backoff, on an injected clock: no test here sleeps."""

from __future__ import annotations

import gc
import random
import threading

import pytest

from tests.helpers import tasks as helpers
from tests.helpers.tasks import Flaky
from unified.functions import FunctionRegistry
from unified.task import RetryPolicy, Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock, backoff_delay, iso


def test_backoff_formula_cap_and_jitter() -> None:
    assert [backoff_delay(n, 2, 3) for n in (1, 2, 3)] == [2, 6, 18]
    assert backoff_delay(5, 2, 3, max_seconds=20) == 20
    rng = random.Random(7)
    delays = [backoff_delay(3, 2, 3, jitter=True, rng=rng) for _ in range(200)]
    assert all(0 <= d <= 18 for d in delays) and len(set(delays)) > 100


def test_no_retry_delay_stays_none_past_the_float_range() -> None:
    # 2.0 ** 1024 overflows: a task retried without delay more than a thousand times waited forever (or max_seconds)
    assert backoff_delay(1100, 0, 2.0) == 0.0
    assert backoff_delay(1100, 0, 2.0, max_seconds=5, jitter=True) == 0.0
    assert backoff_delay(1100, 1, 2.0, max_seconds=5) == 5


def test_max_retries_three_means_four_attempts_with_growing_delays(drained: TaskManager, clock: FakeClock) -> None:
    flaky = Flaky(failures=10)
    task_id = drained.queue_task(flaky, max_retries=3, retry_delay_seconds=10, backoff_factor=2)
    start = clock.now()
    drained.run_until_idle()
    waits = []
    for _ in range(3):
        record = drained.store.get_task(task_id)
        assert record.state == "retrying"
        assert drained.get_task_metadata(task_id)["next_attempt_at"] == iso(record.not_before)  # shown to users
        waits.append(record.not_before - clock.now())
        clock.advance(record.not_before - clock.now() - 0.001)
        assert drained.run_until_idle() == 0, "a retrying task must not run before its delay"
        clock.advance(0.001)
        assert drained.run_until_idle() == 1
    assert waits == pytest.approx([10, 20, 40])
    meta = drained.get_task_metadata(task_id)
    assert meta["state"] == "failure" and meta["attempts"] == 4 and flaky.calls == 4 and meta["next_attempt_at"] is None
    assert [h["state"] for h in meta["history"]] == ["failure"] * 4
    assert meta["error"] == {"type": "ValueError", "message": "failure 4"}
    assert "Traceback" in meta["history"][0]["traceback"]
    assert clock.now() - start == pytest.approx(70)


def test_delay_is_capped(drained: TaskManager, clock: FakeClock) -> None:
    task_id = drained.queue_task(
        Flaky(failures=3), max_retries=3, retry_delay_seconds=10, backoff_factor=10, max_retry_delay_seconds=15
    )
    drained.run_until_idle()
    clock.advance(10)
    drained.run_until_idle()
    assert drained.store.get_task(task_id).not_before - clock.now() == pytest.approx(15)


def test_success_after_retries(drained: TaskManager, clock: FakeClock) -> None:
    task_id = drained.queue_task(Flaky(failures=2), max_retries=2, retry_delay_seconds=1)
    for _ in range(3):
        drained.run_until_idle()
        clock.advance(5)
    meta = drained.get_task_metadata(task_id)
    assert (meta["state"], meta["result"], meta["attempts"]) == ("success", "ok", 3)
    assert [h["state"] for h in meta["history"]] == ["failure", "failure", "success"]


def test_only_exceptions_in_retry_on_are_retried(drained: TaskManager) -> None:
    not_retried = drained.queue_task(Flaky(failures=1, error=KeyError), max_retries=3, retry_on=(ValueError,))
    retried = drained.queue_task(Flaky(failures=1, error=ValueError), max_retries=3, retry_on=(ValueError,))
    drained.run_until_idle()
    assert drained.store.get_task(not_retried).state == "failure"
    assert drained.store.get_task(retried).state == "success"


def test_a_retrying_task_holds_no_worker(clock: FakeClock) -> None:
    """One worker thread; a task waits an hour to retry while another task runs at once."""
    with TaskManager(max_workers=1, clock=clock) as tm:
        waiting = tm.queue_task(Flaky(failures=1), max_retries=1, retry_delay_seconds=3600)
        other = tm.queue_task(lambda: "done")
        assert tm.get_result(other, timeout=5) == "done"
        assert tm.store.get_task(waiting).state == "retrying"
        clock.advance(3600)  # waking the worker, which now runs the retry
        assert tm.get_result(waiting, timeout=5) == "ok"


def test_manual_retry_gives_a_fresh_budget(drained: TaskManager) -> None:
    flaky = Flaky(failures=2)
    task_id = drained.queue_task(flaky, max_retries=0)
    drained.run_until_idle()
    assert drained.store.get_task(task_id).state == "failure"
    drained.retry_task(task_id)
    drained.run_until_idle()
    assert drained.store.get_task(task_id).state == "failure"
    drained.retry_task(task_id)
    drained.run_until_idle()
    meta = drained.get_task_metadata(task_id)
    assert meta["state"] == "success" and meta["attempts"] == 3


def test_a_retry_that_read_the_task_before_another_retry_and_failure_is_refused(
    drained: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unified.errors import ConflictError

    task_id = drained.queue_task(Flaky(failures=5), max_retries=0)
    drained.run_until_idle()
    stale = drained.store.get_task(task_id)  # failure after attempt 1, as a second request read it
    drained.retry_task(task_id)
    drained.run_until_idle()  # failed again: attempt 2
    monkeypatch.setattr(drained.store, "get_task", lambda _: stale)
    with pytest.raises(ConflictError, match="changed state during the retry"):
        drained.retry_task(task_id)
    monkeypatch.undo()
    assert (drained.store.get_task(task_id).state, drained.store.get_task(task_id).attempts) == ("failure", 2)


def test_retrying_success_is_refused(drained: TaskManager) -> None:
    from unified.errors import ConflictError

    task_id = drained.queue_task(lambda: 1)
    drained.run_until_idle()
    with pytest.raises(ConflictError, match="only failed"):
        drained.retry_task(task_id)


def test_threads_are_not_used_by_drained_managers(drained: TaskManager) -> None:
    seen = []
    drained.queue_task(lambda: seen.append(threading.current_thread().name))
    drained.run_until_idle()
    assert seen == [threading.current_thread().name]


def test_failed_attempts_leave_no_reference_cycles(drained: TaskManager) -> None:
    # the worker held each failed attempt's outcome in a frame its exception's traceback reached: thousands of
    # cycles in a retrying workload, each freed only when the garbage collector ran (with every thread stopped)
    helpers.MARKERS.clear()
    gc.disable()
    try:
        task_id = drained.queue_task(helpers.boom_holding_marker, max_retries=2)
        drained.run_until_idle()
        assert drained.store.get_task(task_id).attempts == 3
        assert len(helpers.MARKERS) == 3 and all(ref() is None for ref in helpers.MARKERS)
    finally:
        gc.enable()


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_a_retried_task_is_not_rebuilt_where_the_store_keeps_objects(
    url: str, clock: FakeClock, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = []
    from_spec = Task.from_spec.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Task, "from_spec", classmethod(lambda cls, *a, **k: built.append(1) or from_spec(cls, *a, **k)))
    store = url if url == "memory://" else f"sqlite:///{tmp_path}/u.db"
    with TaskManager(store=store, max_workers=0, clock=clock) as tm:
        task_id = tm.queue_task(Flaky(failures=2), max_retries=2)
        for _ in range(3):
            tm.run_until_idle()
        assert tm.get_task_metadata(task_id)["attempts"] == 3
        # the memory store's attempts run the Task as submitted; a SQL store decodes a new spec per claim
        assert len(built) == (0 if url == "memory://" else 3)
        assert tm.engine.functions._kept == {}  # dropped once the task ended


def test_a_kept_task_is_dropped_when_its_modules_are_forgotten() -> None:
    functions = FunctionRegistry()
    spec = Task(task_id="t", func=helpers.add, max_retries=1).spec()
    first = functions.rebuild(spec, keep_as="t")
    assert functions.rebuild(spec, keep_as="t") is first
    assert functions.rebuild(dict(spec), keep_as="t") is not first  # another spec object: built again
    functions.forget(["tests.helpers.tasks"])
    assert functions.rebuild(spec, keep_as="t") is not first
    functions.drop("t")
    functions.rebuild(Task(task_id="u", func=helpers.add).spec(), keep_as="u")
    assert functions._kept == {}  # no retries allowed: nothing to keep


def test_a_task_changed_after_it_was_queued_runs_as_queued(drained: TaskManager) -> None:
    task = Task(task_id="a", func=helpers.add, args=(1, 2))
    first = drained.queue_task(task)
    task.task_id, task.args = "b", (10, 20)  # the same Task object queued again, changed
    second = drained.queue_task(task)
    drained.run_until_idle()
    assert drained.get_result(first) == 3 and drained.get_result(second) == 30


def test_a_task_canceled_or_skipped_before_it_ran_keeps_no_task(drained: TaskManager) -> None:
    failing = drained.queue_task(helpers.boom)
    skipped = drained.queue_task(helpers.add, args=(1, 2), dependencies=[failing])
    canceled = drained.queue_task(helpers.add, args=(3, 4))
    drained.cancel_task(canceled)
    drained.run_until_idle()
    assert [drained.store.get_task(i).state for i in (failing, skipped, canceled)] == ["failure", "skipped", "canceled"]
    assert drained.engine.functions._kept == {}


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(max_retries=3),
        RetryPolicy(max_retries=3, retry_delay_seconds=2.0, backoff_factor=3.0),
        RetryPolicy(max_retries=3, retry_delay_seconds=2.0, max_retry_delay_seconds=5.0),
    ],
)
def test_delay_after_is_allows_retry_and_delay_in_one(policy: RetryPolicy) -> None:
    for made in range(1, 6):
        expected = policy.delay(made) if policy.allows_retry(made) else None
        assert policy.delay_after(made) == expected
