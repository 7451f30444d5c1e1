"""The store contract for schedules and fires, alert rules, API keys, the audit log and the newer list filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from unified.errors import NotFoundError
from unified.store.base import Store
from unified.store.records import (
    AlertRecord,
    AlertRuleRecord,
    ApiKeyRecord,
    AuditRecord,
    FireRecord,
    RunRecord,
    ScheduleRecord,
    TaskRecord,
)

MakeTask = Callable[..., TaskRecord]
NOW = 1000.0


def schedule(schedule_id: str, **fields: object) -> ScheduleRecord:
    values: dict[str, object] = {
        "name": f"name-{schedule_id}",
        "target_type": "workflow",
        "target": {"workflow_id": "w", "params": {"day": "2026-01-01"}},
        "cron": "*/5 * * * *",
        "next_fire_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return ScheduleRecord(schedule_id, **values)  # type: ignore[arg-type]


def key(key_id: str, **fields: object) -> ApiKeyRecord:
    values: dict[str, object] = {"name": f"name-{key_id}", "role": "viewer", "key_hash": f"hash-{key_id}"}
    values.update(fields)
    return ApiKeyRecord(key_id, created_at=NOW, **values)  # type: ignore[arg-type]


def test_unknown_admin_ids_raise_not_found_naming_the_id(store: Store) -> None:
    calls = [
        lambda: store.get_schedule("nope-schedule"),
        lambda: store.update_schedule("nope-schedule", paused=True),
        lambda: store.delete_schedule("nope-schedule"),
        lambda: store.update_fire("nope-schedule", NOW, state="skipped"),
        lambda: store.delete_alert_rule("nope-rule"),
        lambda: store.get_api_key("nope-key"),
        lambda: store.update_api_key("nope-key", revoked_at=NOW),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match="nope-"):
            call()


# the newer filters of list_tasks and list_runs
def test_tasks_and_runs_keep_their_schedule_id(store: Store, make_task: MakeTask) -> None:
    task = make_task("a", schedule_id="s1")
    store.insert_tasks([task])
    assert store.get_task("a") == task
    run = RunRecord("r1", "w", 1, "running", trigger="schedule", created_at=NOW, schedule_id="s1")
    store.insert_run(run)
    assert store.get_run("r1") == run


def test_list_tasks_by_schedule_and_cursor(store: Store, make_task: MakeTask) -> None:
    records = [make_task(f"t{i}", schedule_id="s1" if i % 2 else None) for i in range(6)]
    store.insert_tasks(records)
    store.update_task("t3", None, state="success")
    seq = {r.id: r.seq for r in records}
    assert [t.id for t in store.list_tasks(schedule_id="s1")] == ["t5", "t3", "t1"]
    assert [t.id for t in store.list_tasks(schedule_id="s1", state="queued")] == ["t5", "t1"]
    assert [t.id for t in store.list_tasks(before_seq=seq["t3"])] == ["t2", "t1", "t0"]
    assert [t.id for t in store.list_tasks(before_seq=seq["t4"], limit=2)] == ["t3", "t2"]
    assert [t.id for t in store.list_tasks(before_seq=seq["t4"], limit=2, offset=1)] == ["t2", "t1"]
    assert [t.id for t in store.list_tasks(before_seq=seq["t5"], schedule_id="s1")] == ["t3", "t1"]
    assert store.list_tasks(before_seq=seq["t0"]) == []


def test_list_tasks_cursor_within_a_run(store: Store, make_task: MakeTask) -> None:
    records = [make_task(f"t{i}", run_id="r" if i != 2 else "other") for i in range(5)]
    store.insert_tasks(records)
    assert [t.id for t in store.list_tasks(run_id="r", before_seq=records[3].seq)] == ["t1", "t0"]


def test_list_runs_by_schedule_since_and_offset(store: Store) -> None:
    for i in range(6):
        store.insert_run(RunRecord(f"r{i}", "w", 1, "running", created_at=NOW + i, schedule_id=f"s{i % 2}"))
    assert [r.run_id for r in store.list_runs(schedule_id="s1")] == ["r5", "r3", "r1"]
    assert [r.run_id for r in store.list_runs(since=NOW + 3)] == ["r5", "r4", "r3"]
    assert [r.run_id for r in store.list_runs(since=NOW + 2, schedule_id="s0")] == ["r4", "r2"]
    assert [r.run_id for r in store.list_runs(limit=2, offset=1)] == ["r4", "r3"]
    assert [r.run_id for r in store.list_runs(offset=5)] == ["r0"]
    assert store.list_runs(offset=6) == []
    assert store.list_runs(since=NOW + 6) == []


# alerts and their rules
def test_alert_delivery_fields_round_trip(store: Store) -> None:
    store.insert_alert(AlertRecord("a1", "task.failed", {"n": 1}, NOW, status="pending", rule_id="rule-1"))
    store.update_alert("a1", status="sent", attempts=2, delivered_at=NOW + 3)
    assert store.list_alerts() == [
        AlertRecord("a1", "task.failed", {"n": 1}, NOW, "handler", "sent", None, "rule-1", 2, NOW + 3)
    ]


def test_alert_rules_put_replace_list_delete(store: Store) -> None:
    webhook = {"type": "webhook", "url": "http://x/é"}
    first = AlertRuleRecord("r1", ["task.failed", "run.failure"], webhook, created_at=NOW)
    second = AlertRuleRecord("r2", ["run.success"], {"type": "log"}, workflow="w", task_name="t", enabled=False)
    store.put_alert_rule(first)
    store.put_alert_rule(second)
    assert store.list_alert_rules() == [first, second]
    replaced = AlertRuleRecord("r1", ["task.failed"], {"type": "log", "level": "error"}, enabled=False, created_at=NOW)
    store.put_alert_rule(replaced)
    assert store.list_alert_rules() == [replaced, second]  # replacing keeps the rule's place
    store.delete_alert_rule("r1")
    assert store.list_alert_rules() == [second]


# schedules
def test_schedules_round_trip_every_field_and_list_oldest_first(store: Store) -> None:
    full = schedule(
        "s1",
        target_type="task",
        target={"task": {"func": "m:f", "args": [1, None], "kwargs": {"ü": True}}},
        cron=None,
        interval_seconds=90.5,
        timezone="Europe/Berlin",
        start_at=NOW - 10,
        end_at=NOW + 1e6,
        catchup=True,
        max_active_runs=3,
        paused=True,
        next_fire_at=NOW + 0.25,
        last_fire_at=NOW - 89.5,
        updated_at=NOW + 1,
    )
    plain = schedule("s2")
    store.put_schedule(full)
    store.put_schedule(plain)
    assert store.get_schedule("s1") == full
    assert store.get_schedule("s2") == plain
    assert store.list_schedules() == [full, plain]
    replaced = schedule("s1", name="renamed", paused=False)
    store.put_schedule(replaced)
    assert store.list_schedules() == [replaced, plain]


def test_update_and_delete_schedule(store: Store) -> None:
    store.put_schedule(schedule("s1"))
    store.update_schedule("s1", paused=True, next_fire_at=None, target={"workflow_id": "w2", "params": {}})
    found = store.get_schedule("s1")
    assert (found.paused, found.next_fire_at, found.target) == (True, None, {"workflow_id": "w2", "params": {}})
    store.insert_fire(FireRecord("s1", NOW, NOW))
    store.delete_schedule("s1")
    assert store.list_schedules() == []
    with pytest.raises(NotFoundError, match="s1"):
        store.get_schedule("s1")
    assert [f.fire_time for f in store.list_fires("s1")] == [NOW]  # fires stay as history


def test_due_schedules_and_the_next_fire(store: Store) -> None:
    assert store.due_schedules(NOW) == []
    assert store.next_schedule_fire() is None
    store.put_schedule(schedule("later", next_fire_at=NOW + 50))
    store.put_schedule(schedule("paused", next_fire_at=NOW - 100, paused=True))
    store.put_schedule(schedule("ended", next_fire_at=None))
    store.put_schedule(schedule("now", next_fire_at=NOW))
    store.put_schedule(schedule("early", next_fire_at=NOW - 10))
    assert [s.schedule_id for s in store.due_schedules(NOW)] == ["early", "now"]
    assert [s.schedule_id for s in store.due_schedules(NOW, limit=1)] == ["early"]
    assert [s.schedule_id for s in store.due_schedules(NOW - 10.5)] == []
    assert [s.schedule_id for s in store.due_schedules(NOW + 50)] == ["early", "now", "later"]
    assert store.next_schedule_fire() == NOW - 10
    store.update_schedule("early", paused=True)
    store.update_schedule("now", next_fire_at=None)
    assert store.next_schedule_fire() == NOW + 50
    store.update_schedule("paused", paused=False)
    assert store.next_schedule_fire() == NOW - 100


# fires
def test_a_fire_is_recorded_once(store: Store) -> None:
    first = FireRecord("s1", NOW, NOW + 0.5, run_id="run-1")
    assert store.insert_fire(first) is True
    assert store.insert_fire(FireRecord("s1", NOW, NOW + 9, run_id="run-2", state="skipped")) is False
    assert store.list_fires("s1") == [first]  # the second changed nothing
    assert store.insert_fire(FireRecord("s1", NOW + 60, NOW + 60)) is True
    assert store.insert_fire(FireRecord("s2", NOW, NOW)) is True


def test_a_duplicate_fire_inside_atomic_keeps_the_transaction(store: Store, make_task: MakeTask) -> None:
    store.insert_fire(FireRecord("s1", NOW, NOW))
    with store.atomic():
        assert store.insert_fire(FireRecord("s1", NOW, NOW)) is False
        store.insert_tasks([make_task("a", schedule_id="s1")])
        assert store.insert_fire(FireRecord("s1", NOW + 1, NOW)) is True
    assert store.get_task("a").schedule_id == "s1"
    assert [f.fire_time for f in store.list_fires("s1")] == [NOW + 1, NOW]


def test_update_fire_and_list_fires_newest_first(store: Store) -> None:
    for i in range(4):
        store.insert_fire(FireRecord("s1", NOW + 60 * i, NOW + 60 * i))
    store.insert_fire(FireRecord("s2", NOW + 1000, NOW))
    store.update_fire("s1", NOW + 60, run_id="run-1")
    store.update_fire("s1", NOW + 120, state="skipped", reason="max_active_runs reached")
    fires = store.list_fires("s1")
    assert [f.fire_time for f in fires] == [NOW + 180, NOW + 120, NOW + 60, NOW]
    assert (fires[1].state, fires[1].reason, fires[2].run_id) == ("skipped", "max_active_runs reached", "run-1")
    assert [f.fire_time for f in store.list_fires("s1", limit=2)] == [NOW + 180, NOW + 120]
    assert store.list_fires("none") == []
    with pytest.raises(NotFoundError):
        store.update_fire("s1", NOW + 1, state="skipped")


def test_queued_fires_are_listed_oldest_first_and_taken_once(store: Store) -> None:
    for sid, offset in (("s2", 60), ("s1", 120), ("s1", 0)):
        store.insert_fire(FireRecord(sid, NOW + offset, NOW, state="queued", reason="waits"))
    store.insert_fire(FireRecord("s1", NOW + 30, NOW))
    assert [(f.schedule_id, f.fire_time) for f in store.queued_fires()] == [
        ("s1", NOW), ("s2", NOW + 60), ("s1", NOW + 120),
    ]  # fmt: skip
    assert store.update_fire("s1", NOW, expected_state="queued", state="started", reason=None) is True
    assert store.update_fire("s1", NOW, expected_state="queued", state="failed") is False, "taken already"
    assert store.list_fires("s1")[-1].state == "started"
    assert [f.fire_time for f in store.queued_fires(limit=1)] == [NOW + 60]


# api keys and the audit log
def test_api_keys_put_get_list_update(store: Store) -> None:
    full = key("k1", role="admin", owner="ana", expires_at=NOW + 3600, last_used_at=NOW + 1, revoked_at=NOW + 2)
    plain = key("k2")
    store.put_api_key(full)
    store.put_api_key(plain)
    assert store.get_api_key("k1") == full
    assert store.list_api_keys() == [full, plain]
    store.update_api_key("k2", last_used_at=NOW + 5)
    store.update_api_key("k2", revoked_at=NOW + 6)
    store.update_api_key("k2", session_epoch=3)
    found = store.get_api_key("k2")
    assert (found.last_used_at, found.revoked_at, found.session_epoch) == (NOW + 5, NOW + 6, 3)
    store.put_api_key(key("k1", role="operator"))
    assert [(k.key_id, k.role) for k in store.list_api_keys()] == [("k1", "operator"), ("k2", "viewer")]


def test_audit_log_newest_first_with_paging(store: Store) -> None:
    entries = [AuditRecord(f"a{i}", NOW + i, "ci", "operator", "POST", f"/runs/{i}", f"run-{i}", 201) for i in range(5)]
    entries[0] = AuditRecord("a0", NOW, None, None, "DELETE", "/keys/k1", None, 403, detail="needs admin")
    for entry in entries:
        store.insert_audit(entry)
    assert store.list_audit() == entries[::-1]
    assert [a.audit_id for a in store.list_audit(limit=2)] == ["a4", "a3"]
    assert [a.audit_id for a in store.list_audit(limit=2, offset=3)] == ["a1", "a0"]
    assert store.list_audit(offset=5) == []
