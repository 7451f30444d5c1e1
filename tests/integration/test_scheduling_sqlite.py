"""Schedules and alerts on a real SQLite file: durable across restarts, racing schedulers fire each time once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.helpers.tasks import add
from tests.unit.test_alerts_channels import Receiver
from unified.alerts import WebhookChannel
from unified.errors import ValidationError
from unified.scheduler import Scheduler
from unified.store.records import FireRecord
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock, SystemClock
from unified.workflow.workflow import Workflow, WorkflowManager


def scheduled_fire_times(tm: TaskManager, schedule_id: str) -> list[str]:
    return sorted(t["metadata"]["fire_time"] for t in tm.list_tasks(limit=10_000, schedule_id=schedule_id))


def test_schedules_and_alert_rules_come_back_after_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/unified.db"
    clock = FakeClock()
    tm = TaskManager(url, max_workers=0, clock=clock)
    wm = WorkflowManager(task_manager=tm)
    task_schedule = tm.schedule_task("tests.helpers.tasks:add", args=(1, 2), cron="*/5 * * * *", name="adder")
    wid = wm.register(Workflow("nightly", tasks=[Task(task_id="a", func="tests.helpers.tasks:add", args=(2, 2))]))
    flow_schedule = wm.schedule_workflow(wid, cron="0 2 * * *", timezone="Europe/Berlin", params={"n": 1})
    rule_id = tm.add_alert_rule(["schedule_missed"], WebhookChannel("http://127.0.0.1:9/", secret="k"))
    clock.advance(300)
    tm.run_until_idle()
    before = tm.list_schedules()
    tm.shutdown()

    again = TaskManager(url, max_workers=0, clock=clock)
    again.alerts.retry_delay_seconds = 0.01  # the rule's webhook port refuses: fail fast
    assert again.list_schedules() == before
    assert [s["schedule_id"] for s in before] == [task_schedule, flow_schedule]
    adder = before[0]
    assert (adder["last_fire_time"], adder["next_fire_time"]) == ("2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z")
    assert before[1]["next_fire_time"] == "2026-01-01T01:00:00Z"  # 02:00 in Berlin
    assert again.list_alert_rules()[0]["rule_id"] == rule_id
    assert again.list_alert_rules()[0]["channel"]["secret"] == "k"
    clock.advance(3600)  # both fire in the new process (catchup off: the adder fires once, for 01:05)
    again.run_until_idle()
    assert scheduled_fire_times(again, task_schedule) == ["2026-01-01T00:05:00Z", "2026-01-01T01:05:00Z"]
    assert {t["state"] for t in again.list_tasks(schedule_id=task_schedule)} == {"success"}
    (run,) = WorkflowManager(task_manager=again).list_runs(schedule_id=flow_schedule)
    assert (run.state, run.params, run.trigger, run.results) == ("success", {"n": 1}, "schedule", {"a": 4})
    again.shutdown()


def test_two_schedulers_racing_on_one_sqlite_file_fire_each_time_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    clock = FakeClock()
    managers = [TaskManager(url, max_workers=0, clock=clock, run_scheduler=False) for _ in range(2)]
    every_minute = managers[0].schedule_task(add, args=(1, 1), cron="* * * * *", max_active_runs=1000)
    catching_up = managers[0].schedule_task(add, args=(2, 2), cron="* * * * *", catchup=True, max_active_runs=1000)
    barrier = threading.Barrier(3, timeout=30)
    errors: list[BaseException] = []

    def race(scheduler: Scheduler) -> None:
        try:
            for _ in range(20):
                barrier.wait()
                scheduler.run_once()
                barrier.wait()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(m.scheduler,)) for m in managers]
    for thread in threads:
        thread.start()
    for step in range(20):
        clock.advance(60 if step else 600)  # the first step jumps ten minutes: a catch-up of ten fires
        barrier.wait()
        barrier.wait()
    for thread in threads:
        thread.join(30)
    assert not errors
    plain = scheduled_fire_times(managers[0], every_minute)
    caught = scheduled_fire_times(managers[0], catching_up)
    assert len(plain) == len(set(plain)) == 20, "catchup off: one per pass, never twice"
    assert len(caught) == len(set(caught)) == 29, "catchup on: every minute, each once"
    for manager in managers:
        manager.shutdown()


def test_the_background_scheduler_fires_on_the_real_clock(tmp_path: Path) -> None:
    with TaskManager(f"sqlite:///{tmp_path}/bg.db", max_workers=1, clock=SystemClock()) as tm:
        sid = tm.schedule_task(add, args=(1, 1), interval_seconds=0.2)
        deadline = time.monotonic() + 10
        while len(tm.list_tasks(state="success", schedule_id=sid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tm.list_tasks(state="success", schedule_id=sid)) >= 2
        tm.pause_schedule(sid)
    assert tm.scheduler.seconds_to_sleep() == tm.scheduler.max_wait_seconds, "paused: nothing is due"


def test_alert_outcomes_are_stored_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/alerts.db"
    receiver = Receiver()
    try:
        with TaskManager(url, max_workers=0, clock=FakeClock()) as tm:
            tm.add_alert_rule(["task_failed"], WebhookChannel(receiver.url, secret="k"))
            tm.queue_task("tests.helpers.tasks:boom")
            tm.run_until_idle()
            assert tm.alerts.flush(10)
    finally:
        receiver.close()
    with TaskManager(url, max_workers=0, clock=FakeClock()) as again:
        (alert,) = again.list_alerts()
    assert (alert["status"], alert["attempts"], alert["channel"]) == ("sent", 1, "webhook")
    assert alert["alert"]["error"]["type"] == "ValueError"


def test_a_fire_that_failed_here_leaves_alone_the_record_another_scheduler_made_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    with TaskManager(store=f"sqlite:///{tmp_path}/s.db", max_workers=0, clock=clock, run_scheduler=False) as tm:
        sid = tm.schedule_task(add, args=(1, 1), cron="@hourly")
        clock.advance(3600)
        scheduler = Scheduler(tm.engine)

        def start_fails(schedule: object, fire_time: float) -> None:
            raise ValidationError("this process cannot start it")

        def another_scheduler_fires(fire: FireRecord) -> bool:
            fired = FireRecord(fire.schedule_id, fire.fire_time, fire.created_at, state="started", task_id="theirs")
            return insert(fire if fire.state != "failed" else fired) and fire.state != "failed"

        insert = tm.store.insert_fire
        monkeypatch.setattr(scheduler, "_start", start_fails)
        monkeypatch.setattr(tm.store, "insert_fire", another_scheduler_fires)
        assert scheduler.run_once() == [], "the time is the other scheduler's: nothing to report from here"
        monkeypatch.undo()
        assert (tm.get_schedule(sid)["last_fire"]["state"], tm.get_schedule(sid)["last_fire"]["task_id"]) == (
            "started",
            "theirs",
        )
