"""Schedules on the memory store with a fake clock: fire counts, catch-up, pause/resume, backfill, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.tasks import add
from unified.errors import NotFoundError, ValidationError
from unified.scheduler import Scheduler
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock, iso
from unified.workflow.workflow import Workflow, WorkflowManager

HOUR = 3600.0


def fire_times(tm: TaskManager, schedule_id: str) -> list[str]:
    """The logical fire times of the tasks a schedule queued, oldest first."""
    return sorted(t["metadata"]["fire_time"] for t in tm.list_tasks(limit=10_000, schedule_id=schedule_id))


def missed_events(tm: TaskManager) -> list[dict]:
    seen: list[dict] = []
    tm.add_alert_handler(seen.append, events=["schedule_missed"])
    return seen


def test_a_day_of_every_five_minutes_is_288_fires(drained: TaskManager, clock: FakeClock) -> None:
    sid = drained.schedule_task(add, args=(1, 2), cron="*/5 * * * *", name="every-5")
    other = drained.queue_task(add, args=(0, 0))  # not scheduled: not in the schedule's list
    for _ in range(288):
        clock.advance(300)
        drained.run_until_idle()
    tasks = drained.list_tasks(limit=10_000, schedule_id=sid)
    assert len(tasks) == 288 and other not in {t["task_id"] for t in tasks}
    assert {t["state"] for t in tasks} == {"success"} and {t["result"] for t in tasks} == {3}
    times = fire_times(drained, sid)
    assert len(set(times)) == 288
    assert times[0] == "2026-01-01T00:05:00Z" and times[-1] == "2026-01-02T00:00:00Z"
    meta = tasks[0]["metadata"]
    assert meta["schedule_id"] == sid and meta["trigger"] == "schedule"
    schedule = drained.get_schedule(sid)
    assert schedule["last_fire_time"] == "2026-01-02T00:00:00Z"
    assert schedule["next_fire_time"] == "2026-01-02T00:05:00Z"
    assert schedule["last_fire"]["state"] == "started" and schedule["last_fire"]["task_id"] == tasks[0]["id"]


def test_a_fire_time_fires_once_however_often_the_scheduler_looks(drained: TaskManager, clock: FakeClock) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly")
    clock.advance(HOUR)
    for _ in range(5):
        drained.run_until_idle()
        drained.scheduler.run_once()
    assert fire_times(drained, sid) == ["2026-01-01T01:00:00Z"]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("@hourly", ["01:00", "02:00", "03:00"]),
        ("@daily", ["01-02 00:00", "01-03 00:00", "01-04 00:00"]),
        ("@weekly", ["01-04 00:00", "01-11 00:00", "01-18 00:00"]),
        ("@monthly", ["02-01 00:00", "03-01 00:00", "04-01 00:00"]),
        ("0 9 * JAN-FEB MON-FRI", ["01-01 09:00", "01-02 09:00", "01-05 09:00"]),
        ("15,45 8-9 * * *", ["08:15", "08:45", "09:15"]),
        ("*/20 */12 1 * *", ["00:20", "00:40", "12:00"]),
    ],
)
def test_cron_extensions(drained: TaskManager, cron: str, expected: list[str]) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron=cron)
    times = drained.next_fire_times(sid, 3)
    fmt = "%H:%M" if len(expected[0]) == 5 else "%m-%d %H:%M"
    assert [t.strftime(fmt) for t in times] == expected
    assert all(t.tzinfo is not None for t in times)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "cron expression '61 \\* \\* \\* \\*' is invalid \\(Bad minute\\)"),
        ({"cron": "* * * *"}, "cron expression .* has 4 fields, not 5"),
        ({"cron": "0 0 30 FEB *"}, "is invalid \\(Bad day-of-month\\)"),
        ({"cron": "0 0 15W * *"}, "is invalid \\(Bad day-of-month\\)"),
        ({"cron": "@sometimes"}, "has 1 fields"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not an IANA time zone"),
        ({"cron": "0 * * * *", "timezone": "Europe"}, "timezone 'Europe' is not an IANA time zone"),
        ({"cron": "0 * * * *", "interval_seconds": 60}, "exactly one of cron= .* or interval_seconds="),
        ({}, "exactly one of cron="),
        ({"interval_seconds": 0}, "interval_seconds must be from 0.01 to 31,536,000"),
        ({"interval_seconds": 1e-15}, "interval_seconds must be from 0.01"),  # hung its caller: fire times stood still
        ({"interval_seconds": 1e300}, "interval_seconds must be from 0.01"),
        ({"cron": "@daily", "start_at": "9999-12-31T00:00:00Z"}, "start_at must fall between 1970 and the year 9000"),
        ({"cron": "@daily", "end_at": "0001-01-01T00:00:00"}, "end_at must fall between 1970"),
        ({"cron": "@daily", "start_at": 1e18}, "start_at must fall between 1970"),
        ({"cron": "@daily", "start_at": 100.0, "end_at": 50.0}, "end_at is before start_at"),
        ({"cron": "@daily", "start_at": "yesterday"}, "start_at 'yesterday' is not ISO-8601"),
        ({"cron": "@daily", "max_active_runs": 0}, "max_active_runs must be a whole number"),
    ],
)
def test_invalid_schedules_are_refused_naming_the_field(drained: TaskManager, options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        drained.schedule_task(add, args=(1, 1), **options)
    assert drained.list_schedules() == []


@pytest.mark.parametrize(("interval", "fires"), [(0.005, 1), (2 * 365 * 24 * HOUR, 0)])  # 2 years: none due yet
def test_a_schedule_stored_before_the_interval_bounds_still_fires(
    drained: TaskManager, clock: FakeClock, interval: float, fires: int
) -> None:
    sid = drained.schedule_task(add, args=(1, 1), interval_seconds=60)
    drained.store.update_schedule(sid, interval_seconds=interval)  # as an earlier release let it be created
    assert len(drained.scheduler.next_fire_times(sid, 3)) == 3, "its page shows its next fires"
    clock.advance(60)  # the fake clock fires what is due
    assert len(fire_times(drained, sid)) == fires
    assert drained.get_schedule(sid)["next_fire_time"] is not None


def test_a_scheduled_task_cannot_have_dependencies(drained: TaskManager) -> None:
    with pytest.raises(ValidationError, match="schedule a workflow instead"):
        drained.schedule_task(add, args=(1, 1), cron="@daily", dependencies=["x"])
    with pytest.raises(ValidationError, match="schedule a workflow instead"):  # a ready Task too (the API's way)
        drained.schedule_task(Task(func=add, args=(1, 1), dependencies=["x"]), cron="@daily")
    assert drained.list_schedules() == []


def test_interval_schedules_count_from_start_at_or_one_interval_after_creation(
    drained: TaskManager, clock: FakeClock
) -> None:
    plain = drained.schedule_task(add, args=(1, 1), interval_seconds=90)
    start = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    anchored = drained.schedule_task(add, args=(1, 1), interval_seconds=HOUR, start_at=start, end_at=start.timestamp()
                                     + 2 * HOUR)  # fmt: skip
    assert [t.strftime("%H:%M:%S") for t in drained.next_fire_times(plain, 3)] == ["00:01:30", "00:03:00", "00:04:30"]
    assert [t.strftime("%H:%M") for t in drained.next_fire_times(anchored, 5)] == ["01:00", "02:00", "03:00"]
    clock.advance(5 * HOUR)
    drained.run_until_idle()
    assert drained.get_schedule(anchored)["next_fire_time"] is None, "past end_at the schedule has ended"
    clock.advance(HOUR)
    assert len(fire_times(drained, anchored)) == 1, "catchup is off: one run for the latest missed time"


def test_catchup_off_runs_the_latest_missed_time_once(drained: TaskManager, clock: FakeClock) -> None:
    seen = missed_events(drained)
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly")
    drained.run_scheduler = False  # the scheduler is "down" for five hours
    clock.advance(5 * HOUR + 600)
    drained.run_scheduler = True
    fired = drained.scheduler.run_once()
    assert [(f.state, iso(f.fire_time)) for f in fired] == [("started", "2026-01-01T05:00:00Z")]
    assert fire_times(drained, sid) == ["2026-01-01T05:00:00Z"]
    assert [(e["schedule_id"], e["missed"], e["fire_time"]) for e in seen] == [(sid, 4, "2026-01-01T01:00:00Z")]
    assert drained.get_schedule(sid)["next_fire_time"] == "2026-01-01T06:00:00Z"


def test_catchup_on_runs_every_missed_time_oldest_first_within_max_active_runs(
    drained: TaskManager, clock: FakeClock
) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly", catchup=True, max_active_runs=2)
    drained.run_scheduler = False
    clock.advance(5 * HOUR)
    drained.run_scheduler = True
    assert [iso(f.fire_time) for f in drained.scheduler.run_once()] == [
        "2026-01-01T01:00:00Z",
        "2026-01-01T02:00:00Z",
    ]
    assert drained.scheduler.run_once() == [], "two are active: the rest wait"
    assert drained.get_schedule(sid)["next_fire_time"] == "2026-01-01T03:00:00Z"
    drained.run_until_idle()  # runs the two
    drained.run_until_idle()  # fires 03:00 and 04:00 and runs them
    drained.run_until_idle()  # fires 05:00
    times = [t["metadata"]["fire_time"][11:16] for t in reversed(drained.list_tasks(schedule_id=sid))]
    assert times == ["01:00", "02:00", "03:00", "04:00", "05:00"], "oldest first"
    assert drained.get_schedule(sid)["next_fire_time"] == "2026-01-01T06:00:00Z"


def test_a_second_scheduler_catching_up_behind_the_first_stays_within_max_active_runs(
    drained: TaskManager, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly", catchup=True, max_active_runs=1)
    drained.run_scheduler = False
    clock.advance(5 * HOUR)
    first, second = drained.scheduler, Scheduler(drained.engine)
    assert [iso(f.fire_time) for f in first.run_once()] == ["2026-01-01T01:00:00Z"]
    stale = drained.store.get_schedule(sid)
    stale.next_fire_at = clock.now() - 4 * HOUR  # as the second one read it, before the first one fired
    monkeypatch.setattr(drained.store, "due_schedules", lambda now, limit: [stale])
    monkeypatch.setattr(second, "_active", lambda schedule: 0)  # and counted the active runs
    assert second.run_once() == [], "01:00 is the first one's: it may be running, so 02:00 waits"
    assert len(drained.list_tasks(schedule_id=sid)) == 1


def test_every_due_schedule_fires_however_many_there_are(drained: TaskManager, clock: FakeClock) -> None:
    ids = [drained.schedule_task(add, args=(1, 1), cron="@hourly", name=f"s{i}") for i in range(250)]
    seen = missed_events(drained)
    clock.advance(HOUR)
    assert all(len(fire_times(drained, sid)) == 1 for sid in ids) and seen == []


def test_a_paused_catchup_schedule_is_no_longer_waited_for(drained: TaskManager, clock: FakeClock) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly", catchup=True, max_active_runs=1)
    drained.run_scheduler = False
    clock.advance(3 * HOUR)
    drained.scheduler.run_once()
    assert sid in drained.scheduler._blocked, "the other missed times wait for the active run"
    drained.pause_schedule(sid)
    drained.scheduler.run_once()
    assert drained.scheduler._blocked == set()


def test_catchup_on_with_a_past_start_at_runs_every_time_since(drained: TaskManager, clock: FakeClock) -> None:
    start = datetime(2025, 12, 29, tzinfo=UTC)
    sid = drained.schedule_task(add, args=(1, 1), cron="@daily", start_at=start, catchup=True, max_active_runs=10)
    drained.run_until_idle()
    assert fire_times(drained, sid) == [f"2025-12-{d}T00:00:00Z" for d in (29, 30, 31)] + ["2026-01-01T00:00:00Z"]


def test_max_active_runs_skips_a_fire_when_catchup_is_off(drained: TaskManager, clock: FakeClock) -> None:
    seen = missed_events(drained)
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly")
    clock.advance(HOUR)  # fires 01:00; nobody runs it
    clock.advance(HOUR)  # 02:00: the 01:00 task is still queued
    assert fire_times(drained, sid) == ["2026-01-01T01:00:00Z"]
    last = drained.get_schedule(sid)["last_fire"]
    assert last["state"] == "skipped" and last["reason"] == "max_active_runs reached"
    assert [(e["event"], e["fire_time"]) for e in seen] == [("schedule_missed", "2026-01-01T02:00:00Z")]
    drained.run_until_idle()
    clock.advance(HOUR)
    assert len(fire_times(drained, sid)) == 2


def test_pause_and_resume_do_not_fire_what_was_missed(drained: TaskManager, clock: FakeClock) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly")
    drained.pause_schedule(sid)
    assert drained.get_schedule(sid)["paused"] is True
    clock.advance(3 * HOUR + 60)
    drained.run_until_idle()
    assert fire_times(drained, sid) == []
    drained.resume_schedule(sid)
    drained.run_until_idle()
    assert fire_times(drained, sid) == [], "missed while paused, catchup off: not fired"
    assert drained.get_schedule(sid)["next_fire_time"] == "2026-01-01T04:00:00Z"
    clock.advance(HOUR)
    assert fire_times(drained, sid) == ["2026-01-01T04:00:00Z"]


def test_resume_with_catchup_fires_what_was_missed(drained: TaskManager, clock: FakeClock) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly", catchup=True, max_active_runs=5)
    drained.pause_schedule(sid)
    clock.advance(3 * HOUR)
    drained.resume_schedule(sid)
    drained.run_until_idle()
    assert [t[11:16] for t in fire_times(drained, sid)] == ["01:00", "02:00", "03:00"]


def test_workflow_schedules_start_runs_with_trigger_fire_time_and_params(
    drained: TaskManager, clock: FakeClock
) -> None:
    wm = WorkflowManager(task_manager=drained)
    wid = wm.register(Workflow("nightly", tasks=[Task(task_id="a", func=add, args=(1, 2))]))
    sid = wm.schedule_workflow(wid, cron="30 1 * * *", timezone="America/New_York", params={"day": "today"})
    unscheduled = wm.start_workflow(wid)
    clock.advance(24 * HOUR)
    wm.task_manager.run_until_idle()
    (run,) = wm.list_runs(schedule_id=sid)
    assert run.trigger == "schedule" and run.state == "success" and run.params == {"day": "today"}
    assert run.metadata == {"schedule_id": sid, "fire_time": "2026-01-01T06:30:00Z", "trigger": "schedule"}
    assert run.version == 1 and run.run_id != unscheduled
    assert wm.get_schedule(sid)["last_fire"]["run_id"] == run.run_id
    assert wm.list_schedules()[0]["target"] == {"workflow_id": wid, "params": {"day": "today"}, "sla_seconds": None}


def test_a_fire_that_cannot_start_is_recorded_failed(drained: TaskManager, clock: FakeClock) -> None:
    seen = missed_events(drained)
    wm = WorkflowManager(task_manager=drained)
    wid = wm.register_workflow("empty")
    sid = wm.schedule_workflow(wid, cron="@hourly")
    clock.advance(HOUR)
    last = wm.get_schedule(sid)["last_fire"]
    assert last["state"] == "failed" and "has no tasks" in last["reason"]
    assert seen[0]["error"]["message"] == last["reason"]
    assert wm.get_schedule(sid)["next_fire_time"] == "2026-01-01T02:00:00Z", "it goes on at the next time"


def test_schedules_are_listed_described_and_removed(drained: TaskManager, clock: FakeClock) -> None:
    later = datetime(2026, 2, 1, tzinfo=UTC)
    sid = drained.schedule_task(add, args=(1, 1), cron="@daily", start_at=later, name="daily-add")
    (listed,) = drained.list_schedules()
    assert listed == drained.get_schedule(sid)
    assert listed["name"] == "daily-add" and listed["target_type"] == "task" and listed["cron"] == "0 0 * * *"
    assert listed["target"]["task"]["func"] == "tests.helpers.tasks:add" and listed["last_fire"] is None
    assert listed["next_fire_time"] == "2026-02-01T00:00:00Z" and listed["start_at"] == "2026-02-01T00:00:00Z"
    assert drained.next_fire_times(sid, 2) == [later, later + timedelta(days=1)], "from start_at when later"
    drained.remove_schedule(sid)
    assert drained.list_schedules() == []
    for call in (drained.get_schedule, drained.pause_schedule, drained.resume_schedule, drained.remove_schedule):
        with pytest.raises(NotFoundError, match="no schedule with id"):
            call(sid)


def test_two_schedulers_on_one_store_fire_each_time_once(clock: FakeClock) -> None:
    import threading

    from unified.engine import Engine
    from unified.scheduler import Scheduler

    tm = TaskManager(store="memory://", max_workers=0, clock=clock, run_scheduler=False)
    sid = tm.schedule_task(add, args=(1, 1), cron="* * * * *", max_active_runs=1000)
    schedulers = [tm.scheduler, Scheduler(Engine(tm.store, clock))]
    barrier = threading.Barrier(3, timeout=10)

    def race(scheduler: Scheduler) -> None:
        for _ in range(60):
            barrier.wait()
            scheduler.run_once()
            barrier.wait()

    threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for _ in range(60):
        clock.advance(60)
        barrier.wait()
        barrier.wait()
    for thread in threads:
        thread.join(10)
    assert len(fire_times(tm, sid)) == 60 == len(set(fire_times(tm, sid)))
    tm.shutdown()


def test_the_loop_sleeps_until_the_next_fire_or_a_change(clock: FakeClock) -> None:
    import threading

    from unified.engine import Engine
    from unified.scheduler import Scheduler, When
    from unified.store.memory import MemoryStore

    engine = Engine(MemoryStore(), clock)
    scheduler = Scheduler(engine, max_wait_seconds=7200)
    passes: list[float] = []
    looked, fired = threading.Event(), threading.Event()
    due_schedules = engine.store.due_schedules

    def counting(now: float, limit: int = 100) -> list:
        passes.append(now)
        looked.set()
        return due_schedules(now, limit)

    engine.store.due_schedules = counting  # type: ignore[method-assign]
    engine.on_ready(lambda n: fired.set())
    assert scheduler.seconds_to_sleep() == 7200, "nothing scheduled: the longest sleep"
    scheduler.start()
    try:
        assert looked.wait(5)
        looked.clear()
        scheduler.add_task(Task(func=add, args=(1, 1)), When(cron="@hourly"))  # a change wakes the loop
        assert looked.wait(5)
        assert scheduler.seconds_to_sleep() == 3600, "it sleeps until 01:00, not a fixed poll"
        assert not fired.is_set()
        clock.advance(3600)  # the jump wakes it
        assert fired.wait(5)
        assert len(passes) <= 4, "one pass per wake-up"
    finally:
        scheduler.stop()
    assert passes[-1] == clock.now()


def test_a_fire_time_reached_during_a_pass_is_fired_next_not_after_a_pause(clock: FakeClock) -> None:
    from unified.engine import Engine
    from unified.scheduler import Scheduler, When
    from unified.store.memory import MemoryStore

    scheduler = Scheduler(Engine(MemoryStore(), clock), busy_wait_seconds=2.0)
    scheduler.add_task(Task(func=add, args=(1, 1)), When(interval_seconds=1))
    clock.advance(1)
    assert len(scheduler.run_once()) == 1
    clock.advance(1)  # the next fire time passes while that pass ran
    assert scheduler.seconds_to_sleep() == 0.0, "due and not waiting on a run: look again at once"
    assert len(scheduler.run_once()) == 1
    assert scheduler.seconds_to_sleep() == 1.0


def test_a_scheduler_and_a_run_start_need_not_have_the_task_code(tmp_path, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    import importlib
    import sys

    (tmp_path / "sched_code_elsewhere.py").write_text("def job() -> str:\n    return 'ran'\n")
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    sys.path.insert(0, str(tmp_path))
    try:  # defined where the code is (a developer's machine, a worker)
        with WorkflowManager(task_manager=TaskManager(store=url, max_workers=0, clock=clock)) as defining:
            flow = Workflow("elsewhere", tasks=[Task(task_id="job", func="sched_code_elsewhere:job")])
            workflow_id = defining.register(flow)
            defining.task_manager.schedule_task("sched_code_elsewhere:job", interval_seconds=60)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sched_code_elsewhere", None)
        importlib.invalidate_caches()
    # a scheduler process and an API process without the code start the work all the same
    with WorkflowManager(task_manager=TaskManager(store=url, max_workers=0, clock=clock)) as elsewhere:
        run_id = elsewhere.start_workflow(workflow_id)
        clock.advance(60)
        elsewhere.task_manager.run_until_idle()  # fires the schedule; the tasks fail here, where the code is missing
        fired = elsewhere.task_manager.list_tasks(state="failure")
        assert len(fired) == 2 and {t["error"]["type"] for t in fired} == {"ImportPathError"}
        assert elsewhere.get_run(run_id).state == "failure"


def test_a_fake_clock_starts_at_iso_text_as_schedules_take_it() -> None:
    assert FakeClock("2026-03-28T00:00:00Z").now() == FakeClock(datetime(2026, 3, 28, tzinfo=UTC)).now()
    assert FakeClock("2026-03-28T00:00:00").now() == FakeClock("2026-03-28T01:00:00+01:00").now()  # naive is UTC


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 0 L * *", ["01-31", "02-28", "03-31"]),
        ("0 0 LW * *", ["01-30", "02-27", "03-31"]),
        ("0 0 * * 5L", ["01-30", "02-27", "03-27"]),
        ("0 0 * * 5#3", ["01-16", "02-20", "03-20"]),
        ("0 0 1-7 * MON", ["01-02", "01-03", "01-04"]),  # day-of-month or day-of-week
        ("0 0 */2 * MON", ["01-05", "01-19", "02-09"]),  # a '*' field: Mondays on odd days, as in Vixie cron
        ("0 0 29 2 *", ["2028-02-29", "2032-02-29", "2036-02-29"]),
    ],
)
def test_cron_day_rules_as_documented(drained: TaskManager, cron: str, expected: list[str]) -> None:
    sid = drained.schedule_task(add, args=(1, 1), cron=cron)
    fmt = "%Y-%m-%d" if len(expected[0]) == 10 else "%m-%d"
    assert [t.strftime(fmt) for t in drained.next_fire_times(sid, 3)] == expected
