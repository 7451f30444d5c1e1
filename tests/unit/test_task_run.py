"""Task.run(): attempts in the calling thread with retries, backoff, timeout and cancel."""

import logging
import threading
import time

import pytest

from tests.helpers import tasks as helpers
from unified.errors import TaskFailedError
from unified.task import Task, TaskContext


class RecordingEvent(threading.Event):
    """A cancel event that records the retry delays waited on instead of sleeping them."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def flaky(failures: int, exc_type: type[BaseException] = ValueError):
    """A function that raises ``failures`` times, then returns the attempt number it saw."""
    seen = []

    def job(ctx: TaskContext):
        seen.append(ctx.attempt)
        if len(seen) <= failures:
            raise exc_type(f"failure {len(seen)}")
        return ctx.attempt

    return job, seen


def test_run_returns_the_result():
    assert Task("t", func=helpers.add, args=(2, 3)).run() == 5


def test_run_passes_params_to_the_context():
    def job(ctx):
        return ctx.params["day"]

    assert Task("t", func=job).run(params={"day": "friday"}) == "friday"


def test_run_binds_a_context_declared_before_the_positional_args():
    assert Task("t", func=helpers.ctx_first, args=(21,)).run() == ["t", 21, 0]


def test_failures_are_retried_until_success():
    job, seen = flaky(2)
    assert Task("t", func=job, max_retries=2).run() == 3
    assert seen == [1, 2, 3]


def test_last_failure_raises_task_failed_error():
    job, seen = flaky(5)
    with pytest.raises(TaskFailedError) as info:
        Task("flaky", func=job, max_retries=1).run()
    assert seen == [1, 2]
    error = info.value
    assert (error.task_id, error.state) == ("flaky", "failure")
    assert error.error["type"] == "ValueError" and error.error["message"] == "failure 2"
    assert "Traceback" in error.error["traceback"]
    assert "after 2 attempts" in str(error)


def test_only_retry_on_exceptions_are_retried():
    job, seen = flaky(5, ValueError)
    with pytest.raises(TaskFailedError):
        Task("t", func=job, max_retries=3, retry_on=KeyError).run()
    assert seen == [1]
    job, seen = flaky(1, KeyError)
    assert Task("t", func=job, max_retries=3, retry_on=(KeyError,)).run() == 2


def test_retry_delays_follow_the_backoff():
    job, _ = flaky(3)
    task = Task("t", func=job, max_retries=3, retry_delay_seconds=1, backoff_factor=2, max_retry_delay_seconds=3)
    task._cancel_event = event = RecordingEvent()
    assert task.run() == 4
    assert event.waits == [1, 2, 3]


def test_retry_delays_with_jitter_stay_within_the_backoff():
    job, _ = flaky(3)
    task = Task("t", func=job, max_retries=3, retry_delay_seconds=1, backoff_factor=2, jitter=True)
    task._cancel_event = event = RecordingEvent()
    task.run()
    assert len(event.waits) == 3
    assert all(0 <= wait <= cap for wait, cap in zip(event.waits, [1, 2, 4], strict=True))


def test_timeout_is_a_failed_attempt_and_is_retried():
    def job(ctx):
        if ctx.attempt == 1:
            helpers.wait_for_cancel(ctx, 5)  # stops when the timeout sets ctx.cancelled
            return "too late"
        return f"attempt {ctx.attempt}"

    started = time.monotonic()
    assert Task("t", func=job, timeout=0.2, max_retries=1).run() == "attempt 2"
    assert time.monotonic() - started < 2


def test_final_timeout_raises_with_state_timeout():
    started = time.monotonic()
    with pytest.raises(TaskFailedError) as info:
        Task("slow", func=helpers.sleep_for, args=(5,), timeout=0.2).run()
    assert time.monotonic() - started < 2
    assert info.value.state == "timeout"
    assert info.value.error["type"] == "TimeoutError"


def cancel_once(task: Task, reached: threading.Event) -> TaskFailedError:
    """Run ``task`` in a thread, cancel it once ``reached`` is set, and return the error run() raised."""
    box: dict = {}

    def run() -> None:
        try:
            task.run()
        except TaskFailedError as exc:
            box["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    assert reached.wait(2)
    canceled_at = time.monotonic()
    task.cancel()
    runner.join(2)
    assert time.monotonic() - canceled_at < 1, "run() did not stop within a second of cancel()"
    return box["error"]


def test_cancel_while_running_raises_canceled():
    started = threading.Event()

    def job(ctx):
        started.set()
        helpers.wait_for_cancel(ctx, 5)

    task = Task("t", func=job, timeout=30, max_retries=3)
    assert cancel_once(task, started).state == "canceled"


def test_cancel_during_the_retry_wait_stops_at_once():
    failed = threading.Event()

    def job():
        failed.set()
        raise ValueError("try again later")

    task = Task("t", func=job, max_retries=3, retry_delay_seconds=30)
    assert cancel_once(task, failed).state == "canceled"


def test_cooperative_code_sees_cancel_inline():
    def job(ctx):
        task.cancel()
        return ctx.cancelled

    task = Task("t", func=job, max_retries=2)
    with pytest.raises(TaskFailedError) as info:
        task.run()
    assert info.value.state == "canceled"
    assert not task._cancel_event.is_set()  # the cancel ended that run; the task can run again


def test_a_task_runs_again_after_a_canceled_run():
    calls = []

    def job():
        calls.append(1)
        if len(calls) == 1:
            task.cancel()
        return len(calls)

    task = Task("t", func=job)
    with pytest.raises(TaskFailedError):
        task.run()
    assert task.run() == 2


def test_shell_task_run_returns_stdout_and_logs_it(caplog):
    caplog.set_level(logging.INFO, logger="unified.task")
    assert Task("shell", command="echo hi").run() == "hi"
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("unified.task.shell", "hi")]


def test_failing_shell_task_is_retried_then_raises():
    with pytest.raises(TaskFailedError) as info:
        Task("t", command="echo nope >&2; exit 2", max_retries=1).run()
    assert info.value.error["type"] == "CommandFailed"
    assert "after 2 attempts" in str(info.value)


def test_process_task_run():
    assert Task("t", func=helpers.add, args=(4, 5), isolation="process").run() == 9
    with pytest.raises(TaskFailedError) as info:
        Task("t", func="tests.helpers.tasks:boom", isolation="process").run()
    assert info.value.error["type"] == "ValueError"
