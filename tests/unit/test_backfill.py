"""Backfills: a past range of a schedule's fire times run on request, within its bounds and its max_active_runs."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.helpers.tasks import add
from unified.errors import ValidationError
from unified.scheduler import Scheduler
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.workflow.workflow import Workflow, WorkflowManager

HOUR = 3600.0
DAY = 24 * HOUR


def test_backfill_runs_a_past_range_once(drained: TaskManager, clock: FakeClock) -> None:
    clock.advance(10 * 24 * HOUR)
    sid = drained.schedule_task(add, args=(2, 2), cron="0 6 * * *", timezone="Europe/Berlin", max_active_runs=5)
    fired = drained.backfill(sid, datetime(2026, 1, 2), datetime(2026, 1, 4, 23, 59))  # naive: Berlin time
    assert [f["fire_time"] for f in fired] == [f"2026-01-0{d}T05:00:00Z" for d in (2, 3, 4)]
    assert all(f["state"] == "started" and f["task_id"] for f in fired)
    assert drained.backfill(sid, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z") == [
        {"fire_time": "2026-01-01T05:00:00Z", "state": "started", "run_id": None,
         "task_id": drained.list_tasks(schedule_id=sid, limit=1)[0]["id"], "reason": None}
    ], "only the time not fired before"  # fmt: skip
    assert drained.backfill(sid, clock.now() + HOUR, clock.now() + 2 * HOUR) == [], "the future is not backfilled"
    drained.run_until_idle()
    assert len(drained.list_tasks(state="success", schedule_id=sid)) == 4
    with pytest.raises(ValidationError, match="end is before its start"):
        drained.backfill(sid, "2026-01-05T00:00:00Z", "2026-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="more than 10000 fire times"):
        every_minute = drained.schedule_task(add, args=(1, 1), cron="* * * * *")
        drained.backfill(every_minute, 0, clock.now())
    bounded = drained.schedule_task(
        add, args=(1, 1), cron="0 6 * * *", start_at="2026-01-05", end_at="2026-01-07T12:00", max_active_runs=5
    )
    fired = drained.backfill(bounded, "2026-01-01T00:00:00Z", "2026-01-10T00:00:00Z")
    assert [f["fire_time"][:10] for f in fired] == ["2026-01-05", "2026-01-06", "2026-01-07"], "within its own bounds"
    for start, end in (("0001-01-01T00:00:00Z", "2026-01-01T00:00:00Z"), ("2026-01-01T00:00:00Z", "9999-12-31")):
        with pytest.raises(ValidationError, match="must fall between 1970 and the year 9000"):
            drained.backfill(sid, start, end)


def test_a_backfill_starts_no_more_than_max_active_runs_and_queues_the_rest(
    drained: TaskManager, clock: FakeClock
) -> None:
    clock.advance(10 * DAY)
    sid = drained.schedule_task(add, args=(1, 1), cron="0 6 * * *", max_active_runs=2)
    fired = drained.backfill(sid, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z")
    assert [(f["fire_time"][:10], f["state"]) for f in fired] == [
        ("2026-01-01", "started"), ("2026-01-02", "started"),
        ("2026-01-03", "queued"), ("2026-01-04", "queued"),
    ]  # fmt: skip
    assert fired[2]["task_id"] is None and "max_active_runs" in fired[2]["reason"]
    assert len(drained.list_tasks(schedule_id=sid)) == 2, "two unfinished at once, as max_active_runs says"
    drained.scheduler.run_once()
    assert len(drained.list_tasks(schedule_id=sid)) == 2, "the queued ones wait while both run"
    drained.run_until_idle()  # runs the two
    drained.run_until_idle()  # starts the queued two, oldest first, and runs them
    tasks = drained.list_tasks(schedule_id=sid, limit=10)
    assert sorted(t["metadata"]["fire_time"][:10] for t in tasks) == [f"2026-01-0{d}" for d in (1, 2, 3, 4)]
    assert {t["state"] for t in tasks} == {"success"}
    assert drained.get_schedule(sid)["last_fire"]["state"] == "started"
    assert drained.backfill(sid, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z") == [], "each time once"


def test_a_paused_schedule_is_backfilled_as_asked_and_its_queue_shared_by_two_schedulers(
    drained: TaskManager, clock: FakeClock
) -> None:
    clock.advance(5 * DAY)
    wm = WorkflowManager(task_manager=drained)
    wid = wm.register(Workflow("load", tasks=[Task(task_id="a", func=add, args=(1, 2))]))
    sid = wm.schedule_workflow(wid, cron="@daily", max_active_runs=1)
    drained.pause_schedule(sid)
    other = Scheduler(drained.engine)
    assert [f["state"] for f in drained.backfill(sid, "2026-01-01", "2026-01-03")] == ["started", "queued", "queued"]
    for _ in range(2):
        drained.run_until_idle()
        started = [f for scheduler in (drained.scheduler, other) for f in scheduler.run_once()]
        assert len(started) == 1, "one run at a time, started by one of the two schedulers"
    drained.run_until_idle()
    runs = wm.list_runs(schedule_id=sid)
    assert sorted(r.metadata["fire_time"][:10] for r in runs) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert drained.get_schedule(sid)["paused"] is True, "a backfill is an explicit request; the schedule stays paused"


def test_a_queued_backfill_time_of_a_removed_schedule_is_recorded_failed(
    drained: TaskManager, clock: FakeClock
) -> None:
    clock.advance(5 * DAY)
    sid = drained.schedule_task(add, args=(1, 1), cron="@daily")
    drained.backfill(sid, "2026-01-01", "2026-01-02")
    drained.remove_schedule(sid)
    drained.run_until_idle()
    drained.run_until_idle()
    fires = drained.store.list_fires(sid)
    assert [(f.state, f.reason) for f in fires] == [
        ("failed", "the schedule was removed before this backfilled time could start"), ("started", None),
    ]  # fmt: skip
    assert drained.store.queued_fires() == []
