"""Alert rules, the bounded background sender, SLA alerts and schedule_missed alerts."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers.tasks import add, boom
from tests.unit.test_alerts_channels import Receiver
from unified.alerts import AlertService, LogChannel, WebhookChannel
from unified.engine import Engine
from unified.errors import NotFoundError, ValidationError
from unified.store.memory import MemoryStore
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock, SystemClock
from unified.workflow.workflow import Workflow, WorkflowManager


def events_of(tm: TaskManager) -> list[tuple[str, str | None]]:
    """(event, rule_id) of every stored alert raised by a rule, sorted (alerts raised at one time tie)."""
    assert tm.alerts.flush(10)
    return sorted((a["event"], a["rule_id"]) for a in tm.list_alerts() if a["rule_id"])


def test_rules_filter_by_event_workflow_and_task_name(drained: TaskManager) -> None:
    wm = WorkflowManager(task_manager=drained)
    etl = wm.register(Workflow("etl", tasks=[Task(task_id="load", func=boom)]))
    other = wm.register(Workflow("other", tasks=[Task(task_id="load", func=boom), Task(task_id="ok", func=add,
                                                                                         args=(1, 1))]))  # fmt: skip
    by_name = wm.add_alert_rule(["workflow_failed", "task_failed"], LogChannel(), workflow="etl")
    by_id = wm.add_alert_rule("workflow_failed", LogChannel(), workflow=other)
    by_task = wm.add_alert_rule(["task_failed", "task_succeeded"], LogChannel(), task_name="ok")
    wm.start_workflow(etl)
    wm.start_workflow(other)
    drained.run_until_idle()
    assert events_of(drained) == sorted(
        [
            ("task_failed", by_name),
            ("workflow_failed", by_name),
            ("task_succeeded", by_task),
            ("workflow_failed", by_id),
        ]
    )
    failed_run = next(a for a in drained.list_alerts() if a["event"] == "workflow_failed" and a["rule_id"] == by_id)
    alert = failed_run["alert"]
    assert (alert["failed_tasks"], alert["error"]["type"], alert["trigger"]) == (["load"], "ValueError", "manual")
    assert "(failed: load): ValueError: " in alert["summary"], "the alert says why the run failed"
    assert [r["rule_id"] for r in wm.list_alert_rules()] == [by_name, by_id, by_task]
    assert wm.list_alert_rules()[0]["channel"] == {"type": "log", "level": "WARNING", "logger": "unified.alerts"}
    wm.remove_alert_rule(by_name)
    with pytest.raises(NotFoundError):
        wm.remove_alert_rule(by_name)


def test_rules_accept_a_config_dict_and_refuse_unknown_events(drained: TaskManager) -> None:
    rule_id = drained.add_alert_rule(["task_retrying"], {"type": "webhook", "url": "http://127.0.0.1:9/"})
    assert drained.list_alert_rules()[0]["channel"]["url"] == "http://127.0.0.1:9/"
    with pytest.raises(ValidationError, match="unknown event names \\['task_exploded'\\]"):
        drained.add_alert_rule(["task_exploded"], LogChannel())
    with pytest.raises(ValidationError, match="at least one event"):
        drained.add_alert_rule([], LogChannel())
    with pytest.raises(ValidationError, match="unknown alert channel type"):
        drained.add_alert_rule(["task_failed"], {"type": "carrier-pigeon"})
    assert [r["rule_id"] for r in drained.list_alert_rules()] == [rule_id]


def test_a_slow_channel_never_holds_up_the_engine(drained: TaskManager) -> None:
    hold = threading.Event()
    slow = Receiver(hold=hold)
    try:
        drained.add_alert_rule(["task_failed", "task_succeeded"], WebhookChannel(slow.url))
        started = time.monotonic()
        for _ in range(5):
            drained.queue_task(boom)
            drained.queue_task(add, args=(1, 1))
        assert drained.run_until_idle() == 10
        assert time.monotonic() - started < 2, "the engine waited for a delivery"
        assert {a["status"] for a in drained.list_alerts()} == {"pending"}
        hold.set()
        assert drained.alerts.flush(10)
    finally:
        hold.set()
        slow.close()
    assert [a["status"] for a in drained.list_alerts()] == ["sent"] * 10


def test_events_are_built_only_for_what_an_enabled_rule_or_a_subscriber_takes(drained: TaskManager) -> None:
    engine, bus = drained.engine, drained.engine.bus
    drained.alerts.rules.cache_seconds = 0  # rules changed in the store are seen at once
    built: list[str] = []
    publish = engine._publish
    engine._publish = lambda event: built.append(event["event"]) or publish(event)  # type: ignore[method-assign]
    drained.queue_task(add, args=(1, 2))
    drained.run_until_idle()
    assert not bus.wants("task_succeeded") and built == []  # no rule: nothing is built for the alerts

    rule_id = drained.add_alert_rule(["task_failed", "task_succeeded"], LogChannel())
    assert bus.wants("task_failed") and not bus.wants("task_retrying")
    drained.queue_task(add, args=(1, 2))
    drained.queue_task(boom, max_retries=1)
    drained.run_until_idle()
    assert sorted(built) == ["task_failed", "task_succeeded"]  # not the retry: no rule names it
    assert events_of(drained) == [("task_failed", rule_id), ("task_succeeded", rule_id)]

    rule = drained.store.list_alert_rules()[0]
    rule.enabled = False
    drained.store.put_alert_rule(rule)
    assert not bus.wants("task_failed")  # a disabled rule takes nothing
    seen: list[str] = []
    drained.add_alert_handler(lambda event: seen.append(event["event"]), ["task_succeeded"])
    assert bus.wants("task_succeeded") and not bus.wants("task_failed")
    drained.queue_task(add, args=(1, 2))
    drained.run_until_idle()
    assert seen == ["task_succeeded"]


def test_a_full_queue_records_the_alert_failed_instead_of_blocking() -> None:
    engine = Engine(MemoryStore(), FakeClock())
    service = AlertService(engine, queue_size=1)
    hold = threading.Event()
    slow = Receiver(hold=hold)
    try:
        service.add_rule(["task_failed"], WebhookChannel(slow.url))
        event = {"event": "task_failed", "task_id": "t", "name": "t", "workflow_id": None, "at": 0.0}
        engine.bus.publish(event)
        assert slow.got.wait(5), "the sender took the first alert"
        engine.bus.publish(event)  # waits in the queue
        engine.bus.publish(event)  # the queue is full
        hold.set()
        assert service.flush(10)
    finally:
        hold.set()
        slow.close()
        service.close()
    alerts = sorted(service.list_alerts(), key=lambda a: a["status"])
    assert [a["status"] for a in alerts] == ["failed", "sent", "sent"]
    assert "the alert queue of this channel is full" in alerts[0]["error"]


def test_a_channel_that_does_not_answer_delays_only_its_own_alerts() -> None:
    engine = Engine(MemoryStore(), FakeClock())
    service = AlertService(engine)
    hold = threading.Event()
    stuck, healthy = Receiver(hold=hold), Receiver()
    try:
        service.add_rule(["task_failed"], WebhookChannel(stuck.url))
        service.add_rule(["task_failed"], WebhookChannel(healthy.url))
        event = {"event": "task_failed", "task_id": "t", "name": "t", "workflow_id": None, "at": 0.0}
        engine.bus.publish(event)
        assert stuck.got.wait(5) and healthy.got.wait(5), "the healthy channel got its alert while the other hung"
    finally:
        hold.set()
        stuck.close()
        healthy.close()
        service.close()


def test_alerts_still_queued_when_the_service_closes_are_handed_to_another_process() -> None:
    store, clock = MemoryStore(), FakeClock()
    engine = Engine(store, clock)
    service = AlertService(engine)
    hold = threading.Event()
    stuck = Receiver(hold=hold)
    try:
        service.add_rule(["task_failed"], WebhookChannel(stuck.url))
        for _ in range(3):
            engine.bus.publish({"event": "task_failed", "task_id": "t", "name": "t", "workflow_id": None, "at": 0.0})
        assert stuck.got.wait(5)
        service.close(timeout=0.1)  # gives up waiting for the delivery under way, then for its sender
        hold.set()
        deadline = time.monotonic() + 5
        while not store.list_alerts(status="sent") and time.monotonic() < deadline:
            time.sleep(0.01)  # the delivery under way ends
        handed_back = [a for a in store.list_alerts() if a.status == "pending"]
        assert len(handed_back) == 2, "the two still queued are neither sent nor failed"
        assert all(a.owner is None and a.lease_expires_at == clock.now() for a in handed_back), "leased to nobody"
        clock.advance(1)
        other = AlertService(Engine(store, clock), threaded=False)
        assert other.take_over() == 2
        assert other.flush(10)
        other.close()
    finally:
        hold.set()
        stuck.close()
    statuses = sorted(a["status"] for a in service.list_alerts())
    assert statuses == ["sent", "sent", "sent"], "none is left pending for good"


def test_sla_missed_is_raised_once_for_a_task_not_finished_in_time(drained: TaskManager, clock: FakeClock) -> None:
    rule_id = drained.add_alert_rule(["sla_missed"], LogChannel())
    on_time = drained.queue_task(add, args=(1, 1), name="on-time", sla_seconds=60)
    drained.run_until_idle()
    late = drained.queue_task(add, args=(2, 2), name="late", sla_seconds=60)
    clock.advance(59)
    assert events_of(drained) == []
    clock.advance(2)
    clock.advance(600)
    assert events_of(drained) == [("sla_missed", rule_id)]
    alert = drained.list_alerts()[0]["alert"]
    assert alert["task_id"] == late and alert["state"] == "queued" and alert["sla_seconds"] == 60
    assert alert["error"]["message"] == "task 'late' had not finished 60 s after it was queued"
    assert alert["deadline"] == "2026-01-01T00:01:00Z"
    assert drained.get_task_metadata(on_time)["state"] == "success"


def test_sla_missed_for_runs_and_scheduled_tasks(drained: TaskManager, clock: FakeClock) -> None:
    seen: list[dict] = []
    drained.add_alert_handler(seen.append, events=["sla_missed"])
    wm = WorkflowManager(task_manager=drained)
    wid = wm.register(Workflow("slow", tasks=[Task(task_id="a", func=add, args=(1, 1))]))
    run_id = wm.start_workflow(wid, sla_seconds=30)
    sid = drained.schedule_task(add, args=(1, 1), name="hourly", cron="@hourly", sla_seconds=120)
    scheduled_run = wm.schedule_workflow(wid, cron="@hourly", sla_seconds=600)
    clock.advance(3600)  # the run misses its SLA; both schedules fire
    clock.advance(121)
    assert [(e["event"], e["run_id"], e["task_id"]) for e in seen[:1]] == [("sla_missed", run_id, None)]
    assert seen[1]["name"] == "hourly" and seen[1]["id"] == drained.list_tasks(schedule_id=sid)[0]["id"]
    drained.run_until_idle()
    clock.advance(600)
    assert len(seen) == 2, "the scheduled run finished within its SLA"
    assert wm.list_runs(schedule_id=scheduled_run)[0].metadata["sla_seconds"] == 600


def test_sla_is_watched_by_a_thread_on_the_real_clock() -> None:
    with TaskManager(store="memory://", max_workers=0, clock=SystemClock(), run_scheduler=False) as tm:
        missed = threading.Event()
        tm.add_alert_handler(lambda alert: missed.set(), events=["sla_missed"])
        tm.queue_task(add, args=(1, 1), sla_seconds=0.05)
        assert missed.wait(5)


def test_invalid_sla_is_refused(drained: TaskManager) -> None:
    with pytest.raises(ValidationError, match="sla_seconds must be a positive finite number"):
        drained.queue_task(add, args=(1, 1), sla_seconds=0)


def test_schedule_missed_reaches_alert_rules(drained: TaskManager, clock: FakeClock) -> None:
    rule_id = drained.add_alert_rule(["schedule_missed"], LogChannel(), task_name="nightly")
    sid = drained.schedule_task(add, args=(1, 1), cron="@hourly", name="nightly")
    clock.advance(3600)
    clock.advance(3600)  # the first run is still queued: max_active_runs skips this one
    assert events_of(drained) == [("schedule_missed", rule_id)]
    alert = drained.list_alerts()[0]["alert"]
    assert alert["schedule_id"] == sid and alert["fire_time"] == "2026-01-01T02:00:00Z"
    assert alert["error"]["message"] == "max_active_runs reached"
