"""Schedules and alerts through the REST API: cron and interval schedules, pause, resume, backfill, alert rules."""

from __future__ import annotations

import time

from tests.integration.conftest import Api
from tests.integration.test_api import pipeline_id


def test_a_workflow_schedule_shows_its_next_fires_and_fires_on_time(api: Api) -> None:
    wid = pipeline_id(api)
    body = {"name": "quarterly", "workflow_id": wid, "cron": "*/15 * * * *", "params": {"from": "cron"},
            "sla_seconds": 600}  # fmt: skip
    created = api.call("POST", "/schedules", json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["target"]["sla_seconds"] == 600
    assert schedule["target_type"] == "workflow" and schedule["next_fire_time"] == "2026-01-01T00:15:00Z"
    assert len(schedule["next_fire_times"]) == 5 and schedule["next_fire_times"][0].startswith("2026-01-01T00:15")
    api.clock.advance(15 * 60)
    api.drain()
    runs = api.call("GET", "/runs", params={"workflow_id": wid}).json()["items"]
    assert [(r["trigger"], r["params"], r["state"]) for r in runs] == [("schedule", {"from": "cron"}, "success")]
    listed = api.call("GET", "/schedules").json()["items"]
    assert [s["schedule_id"] for s in listed] == [schedule["schedule_id"]]
    assert listed[0]["last_fire"]["state"] == "started"


def test_pause_resume_backfill_and_delete(api: Api) -> None:
    body = {"workflow_id": pipeline_id(api), "interval_seconds": 600}
    sid = api.call("POST", "/schedules", json=body).json()["schedule_id"]
    assert api.call("POST", f"/schedules/{sid}/pause", role="operator").json()["paused"] is True
    api.clock.advance(3600)
    api.drain()
    assert api.call("GET", "/runs").json()["items"] == [], "a paused schedule does not fire"
    assert api.call("POST", f"/schedules/{sid}/resume", role="operator").json()["paused"] is False
    window = {"start": "2026-01-01T00:10:00Z", "end": "2026-01-01T00:30:00Z"}
    fires = api.call("POST", f"/schedules/{sid}/backfill", role="operator", json=window)
    assert fires.status_code == 200, fires.text
    assert [f["fire_time"] for f in fires.json()] == [
        "2026-01-01T00:10:00Z",
        "2026-01-01T00:20:00Z",
        "2026-01-01T00:30:00Z",
    ]
    backwards = api.call("POST", f"/schedules/{sid}/backfill", json={"start": window["end"], "end": window["start"]})
    assert backwards.status_code == 422
    assert api.call("DELETE", f"/schedules/{sid}").status_code == 204
    assert api.call("GET", f"/schedules/{sid}").status_code == 404


def test_a_task_schedule_queues_a_registered_task(api: Api) -> None:
    body = {"task": {"task": "add", "args": [20, 22]}, "interval_seconds": 60, "name": "answer"}
    sid = api.call("POST", "/schedules", json=body).json()["schedule_id"]
    api.clock.advance(60)
    api.drain()
    tasks = api.call("GET", "/tasks", params={"state": "success"}).json()["items"]
    assert [t["result"] for t in tasks] == [42]
    assert api.call("GET", f"/schedules/{sid}").json()["target_type"] == "task"


def test_bad_schedules_are_refused(api: Api) -> None:
    wid = pipeline_id(api)
    for body, status in [
        ({"workflow_id": wid, "cron": "every minute please"}, 422),
        ({"workflow_id": wid, "cron": "61 * * * *"}, 422),
        ({"workflow_id": wid, "cron": "* * * * *", "timezone": "Mars/Olympus"}, 422),
        ({"workflow_id": wid}, 422),
        ({"workflow_id": wid, "cron": "* * * * *", "interval_seconds": 60}, 422),
        ({"cron": "* * * * *"}, 422),
        ({"workflow_id": wid, "task": {"task": "add"}, "cron": "* * * * *"}, 422),
        ({"workflow_id": "missing", "cron": "* * * * *"}, 404),
        ({"task": {"task": "no_such_task"}, "cron": "* * * * *"}, 404),
    ]:
        response = api.call("POST", "/schedules", json=body)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()) == {"error"}
    cron = api.call("POST", "/schedules", json={"workflow_id": wid, "cron": "61 * * * *"}).json()["error"]
    assert "cron" in cron["message"]


def test_alert_rules_mask_secrets_and_alerts_are_listed(api: Api) -> None:
    webhook = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"}
    created = api.call("POST", "/alert-rules", json={"events": ["task_succeeded"], "channel": webhook})
    assert created.status_code == 201 and created.json()["channel"]["secret"] == "***"
    rule_id = created.json()["rule_id"]
    logged = api.call("POST", "/alert-rules", json={"events": ["task_failed"], "channel": {"type": "log"}})
    assert logged.status_code == 201
    slack = {"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/TOKEN"}
    assert api.call("POST", "/alert-rules", json={"events": ["workflow_failed"], "channel": slack}).status_code == 201
    listed = api.call("GET", "/alert-rules", role="viewer").json()
    assert listed[0]["rule_id"] == rule_id and "s3cret" not in str(listed)
    assert listed[0]["channel"]["url"] == "http://127.0.0.1:9/***", "the address by its host: its path may be a key"
    assert listed[2]["channel"]["url"] == "https://hooks.slack.com/***" and "TOKEN" not in str(listed)
    assert api.call("DELETE", f"/alert-rules/{rule_id}").status_code == 204
    api.call("POST", "/tasks", json={"task": "fail", "max_retries": 0})
    api.drain()
    deadline = time.monotonic() + 10
    while not (alerts := api.call("GET", "/alerts").json()["items"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [a["event"] for a in alerts] == ["task_failed"]
    bad = api.call("POST", "/alert-rules", json={"events": ["task_failed"], "channel": {"type": "pigeon"}})
    assert bad.status_code == 422 and "pigeon" in bad.json()["error"]["message"]
    unknown = api.call("POST", "/alert-rules", json={"events": ["nothing_happened"], "channel": {"type": "log"}})
    assert unknown.status_code == 422
