"""Metadata dicts, captured logs per attempt, engine events to alert handlers (which never break a run)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.tasks import Flaky, boom
from unified.errors import NotFoundError, TaskFailedError, ValidationError
from unified.task import Task, TaskContext
from unified.task_manager import TaskManager
from unified.utils import ISO_CACHE, FakeClock, iso
from unified.workflow.workflow import Workflow, WorkflowManager

METADATA_KEYS = {
    "task_id", "name", "run_id", "state", "priority", "attempts", "max_retries", "timeout", "dependencies",
    "created_at", "queued_at", "started_at", "finished_at", "duration_seconds", "result", "error", "metadata",
    "history",
}  # fmt: skip


@given(st.floats(min_value=-1e10, max_value=2.5e11, allow_nan=False) | st.sampled_from([0.0, 0.9999995, 1.0000005]))
def test_timestamps_read_as_datetime_writes_them(ts: float) -> None:
    assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def test_a_timestamp_formatted_again_reads_the_same_before_and_after_the_cache_fills() -> None:
    stamps = [1_796_000_000 + i / 7 for i in range(ISO_CACHE + 10)]  # fills the cache past its bound once
    first = [iso(ts) for ts in stamps]
    assert [iso(ts) for ts in stamps] == first
    assert first == [datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") for ts in stamps]
    assert iso(-0.0) == iso(0.0) == iso(0) == "1970-01-01T00:00:00Z"


def test_metadata_has_every_documented_field_and_is_json(drained: TaskManager, clock: FakeClock) -> None:
    def work(ctx: TaskContext) -> int:
        clock.advance(2.5)
        ctx.metadata["rows"] = 10
        return 7

    task_id = drained.queue_task(work, name="work", priority=3, timeout=30, max_retries=2, metadata={"team": "data"})
    drained.run_until_idle()
    meta = drained.get_task_metadata(task_id)
    assert meta.keys() >= METADATA_KEYS
    json.dumps(meta)
    assert meta["state"] == "success" and meta["result"] == 7 and meta["name"] == "work"
    assert meta["metadata"] == {"team": "data", "rows": 10}
    assert meta["duration_seconds"] == pytest.approx(2.5)
    assert meta["started_at"].endswith("Z") and meta["created_at"] == "2026-01-01T00:00:00Z"
    (attempt,) = meta["history"]
    assert attempt["attempt"] == 1 and attempt["state"] == "success" and attempt["worker"]
    assert attempt["duration_seconds"] == pytest.approx(2.5)


def test_get_result_raises_task_failed_error_with_the_error(drained: TaskManager) -> None:
    task_id = drained.queue_task(boom, args=("bad input",))
    drained.run_until_idle()
    with pytest.raises(TaskFailedError, match="ValueError: bad input") as info:
        drained.get_result(task_id)
    assert info.value.state == "failure" and info.value.error["type"] == "ValueError"


def test_unknown_ids_raise_not_found(drained: TaskManager) -> None:
    for call in (drained.get_task_metadata, drained.cancel_task, drained.get_task_logs, drained.retry_task):
        with pytest.raises(NotFoundError, match="no task with id 'nope'"):
            call("nope")


def test_list_tasks_filters_by_state(drained: TaskManager) -> None:
    ok = drained.queue_task(lambda: 1)
    bad = drained.queue_task(boom)
    drained.run_until_idle()
    assert [m["task_id"] for m in drained.list_tasks(state="failure")] == [bad]
    assert [m["task_id"] for m in drained.list_tasks()] == [bad, ok]
    assert len(drained.list_tasks(limit=1)) == 1


def test_a_list_filter_by_an_unknown_state_is_refused_not_answered_empty(drained: TaskManager) -> None:
    drained.queue_task(lambda: 1)
    with pytest.raises(ValidationError, match="'queud' is not a task state: filter by one of pending, queued"):
        drained.list_tasks(state="queud")
    with pytest.raises(ValidationError, match="'done' is not a run state: filter by one of running, success"):
        WorkflowManager(task_manager=drained).list_runs(state="done")


def test_lists_of_tasks_read_their_attempts_at_once_each_with_its_own_history(
    drained: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = drained.queue_task(Flaky(1), max_retries=1)
    bad = drained.queue_task(boom)
    wm = WorkflowManager(task_manager=drained)
    flow = wm.register(Workflow("flow", tasks=[Task(task_id="up", func=boom), Task(task_id="down", func=lambda: 1,
                                                                                    dependencies=["up"])]))  # fmt: skip
    run_id = wm.start_workflow(flow)
    drained.run_until_idle()

    def one_at_a_time(task_id: str) -> None:
        raise AssertionError(f"the attempts of {task_id} were read on their own")

    monkeypatch.setattr(drained.store, "list_attempts", one_at_a_time)  # a query per task: slow on a big run
    history = {m["task_id"]: [(h["attempt"], h["state"]) for h in m["history"]] for m in drained.list_tasks()}
    assert history[flaky] == [(1, "failure"), (2, "success")] and history[bad] == [(1, "failure")]
    run = wm.get_run(run_id)
    assert [(h["attempt"], h["state"]) for h in run.tasks["up"]["history"]] == [(1, "failure")]
    assert run.tasks["down"]["state"] == "skipped" and run.tasks["down"]["history"] == []


def test_logs_are_captured_per_attempt(drained: TaskManager, clock: FakeClock) -> None:
    def noisy(ctx: TaskContext) -> str:
        ctx.logger.info("attempt %d starting", ctx.attempt)
        logging.getLogger("some.library").warning("library says <b>hi</b>")
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    task_id = drained.queue_task(noisy, max_retries=1, retry_delay_seconds=1)
    drained.run_until_idle()
    clock.advance(1)
    drained.run_until_idle()
    logs = drained.get_task_logs(task_id)
    assert [(line["attempt"], line["level"], line["message"]) for line in logs] == [
        (1, "INFO", "attempt 1 starting"),
        (1, "WARNING", "library says <b>hi</b>"),
        (2, "INFO", "attempt 2 starting"),
        (2, "WARNING", "library says <b>hi</b>"),
    ]
    assert all(line["ts"].endswith("Z") for line in logs)


def test_process_and_shell_output_is_captured(manager: TaskManager) -> None:
    shell = manager.queue_task(command="echo out; echo err >&2")
    proc = manager.queue_task("tests.helpers.tasks:with_context", isolation="process")
    manager.wait(shell, timeout=10)
    manager.wait(proc, timeout=10)
    assert manager.get_result(shell) == "out"
    assert {(x["level"], x["message"]) for x in manager.get_task_logs(shell)} == {("INFO", "out"), ("WARNING", "err")}
    messages = [x["message"] for x in manager.get_task_logs(proc)]
    assert "printed line" in messages and "to stderr" in messages
    assert manager.get_task_metadata(proc)["metadata"] == {"rows": 3}


def test_events_reach_handlers_and_every_alert_is_stored(drained: TaskManager, clock: FakeClock) -> None:
    seen: list[dict] = []
    drained.add_alert_handler(seen.append)
    drained.add_alert_handler(lambda alert: 1 / 0, events=["task_failed"])  # a broken handler
    ok = drained.queue_task(lambda: 1, name="fine")
    bad = drained.queue_task(Flaky(failures=5), name="flaky", max_retries=1)
    drained.run_until_idle()
    clock.advance(1)
    drained.run_until_idle()
    events = [(e["event"], e["task_id"]) for e in seen]
    assert events == [("task_succeeded", ok), ("task_retrying", bad), ("task_failed", bad)]
    failed = seen[-1]
    assert {"event", "task_id", "run_id", "workflow_id", "name", "state", "attempt", "error", "at"} <= failed.keys()
    assert failed["name"] == "flaky" and failed["state"] == "failure" and failed["attempt"] == 2
    assert failed["error"]["message"] == "failure 2"
    stored = drained.store.list_alerts()
    assert len(stored) == 4
    assert [a.status for a in stored if a.status == "failed"] == ["failed"]
    assert "ZeroDivisionError" in next(a.error for a in stored if a.status == "failed")
    assert drained.get_task_metadata(bad)["state"] == "failure", "the broken handler broke nothing"


def test_a_task_event_says_how_the_attempt_it_ends_went_and_how_long_it_took(
    drained: TaskManager, clock: FakeClock
) -> None:
    seen: list[dict] = []
    drained.add_alert_handler(seen.append)

    def slow_then_fine(ctx: TaskContext) -> int:
        clock.advance(2.5 if ctx.attempt == 1 else 0.5)  # the attempt's own time, on the injected clock
        if ctx.attempt == 1:
            raise ValueError("first attempt")
        return ctx.attempt

    task_id = drained.queue_task(slow_then_fine, max_retries=1)
    wm = WorkflowManager(task_manager=drained)
    flow = wm.register(Workflow("flow", tasks=[Task(task_id="up", func=boom), Task(task_id="down", func=lambda: 1,
                                                                                    dependencies=["up"])]))  # fmt: skip
    wm.start_workflow(flow)
    drained.run_until_idle()
    ended = {(e["event"], e["task_id"]): (e["attempt_state"], e["attempt_seconds"]) for e in seen if e["task_id"]}
    assert "attempt_seconds" not in seen[-1] and seen[-1]["event"] == "workflow_failed", "run events carry none"
    assert ended[("task_retrying", task_id)] == ("failure", 2.5)
    assert ended[("task_succeeded", task_id)] == ("success", 0.5)
    assert ended[("task_failed", "up")] == ("failure", 0.0)
    assert ended[("task_skipped", "down")] == (None, None), "a skipped task ran no attempt"
    queued = drained.queue_task(lambda: 1)
    drained.cancel_task(queued)
    assert (seen[-1]["event"], seen[-1]["attempt_state"], seen[-1]["attempt_seconds"]) == ("task_canceled", None, None)


def test_workflow_events(drained: TaskManager) -> None:
    seen: list[dict] = []
    drained.add_alert_handler(seen.append, events=["workflow_succeeded", "workflow_failed", "task_timeout"])
    wm = WorkflowManager(task_manager=drained)
    good = wm.register(Workflow("good", tasks=[Task(task_id="a", func=lambda: 1)]))
    bad = wm.register(Workflow("bad", tasks=[Task(task_id="t", func="tests.helpers.tasks:sleep_for", args=(5,),
                                                  timeout=0.05)]))  # fmt: skip
    wm.start_workflow(good)
    wm.start_workflow(bad)
    drained.run_until_idle()
    assert [(e["event"], e["workflow_id"]) for e in seen] == [
        ("workflow_succeeded", good),
        ("task_timeout", bad),
        ("workflow_failed", bad),
    ]


def test_unknown_event_names_are_refused(drained: TaskManager) -> None:
    from unified.errors import ValidationError

    with pytest.raises(ValidationError, match="unknown event names"):
        drained.add_alert_handler(print, events=["task_exploded"])


def test_a_timeout_counts_as_a_failed_attempt_and_is_retried(drained: TaskManager, clock: FakeClock) -> None:
    task_id = drained.queue_task(
        "tests.helpers.tasks:sleep_for", args=(5,), timeout=0.05, max_retries=1, retry_delay_seconds=10
    )
    drained.run_until_idle()
    assert drained.store.get_task(task_id).state == "retrying"
    clock.advance(10)
    drained.run_until_idle()
    meta = drained.get_task_metadata(task_id)
    assert meta["state"] == "timeout" and meta["attempts"] == 2
    assert [h["state"] for h in meta["history"]] == ["timeout", "timeout"]


def test_a_task_logging_half_a_surrogate_pair_ends_normally_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def logs_it(ctx: TaskContext) -> str:
        ctx.logger.warning("got %s", "\udcff")  # bytes decoded with surrogateescape carry these
        return "done"

    with TaskManager(store=f"sqlite:///{tmp_path / 'logs.db'}", max_workers=0, run_scheduler=False) as tm:
        task_id = tm.queue_task(logs_it)
        tm.run_until_idle()
        assert tm.get_task_metadata(task_id)["state"] == "success"
        assert [line["message"] for line in tm.get_task_logs(task_id)] == ["got \\udcff"]
