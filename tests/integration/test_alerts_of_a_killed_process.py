"""A real process killed with SIGKILL while it delivers an alert and while its task's SLA deadline is ahead: another
process takes the alert over once its lease lapses and sends it, and raises the missed SLA, each exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.postgres import database_url
from tests.helpers.workers import ROOT, wait_until
from tests.unit.test_alerts_channels import Receiver
from unified.alerts import AlertService, WebhookChannel
from unified.engine import Engine
from unified.store.sql import SqlStore
from unified.utils import FakeClock

# its pool serves the default queue, where a task fails (raising an alert); the task with an SLA waits in another
RAISER = """
import sys, time
from unified.task_manager import TaskManager
tm = TaskManager(store=sys.argv[1], max_workers=1, queues=["default"], run_scheduler=False)
tm.queue_task("tests.helpers.tasks:add", args=(1, 1), queue="later", sla_seconds=30)
tm.queue_task("tests.helpers.tasks:boom", args=("its alert outlives this process",))
print("queued", flush=True)
time.sleep(60)
"""
LEASE_SECONDS = 60.0  # AlertService's default, which the killed process used


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database two processes share."""
    with database_url(request.param, tmp_path) as shared:
        yield shared


def service_at(store: SqlStore, seconds_from_now: float) -> AlertService:
    """An alert service of this process, its clock ``seconds_from_now`` ahead (checked by hand: no keeper thread)."""
    return AlertService(Engine(store, FakeClock(time.time() + seconds_from_now)), threaded=False)


def test_an_alert_and_an_sla_of_a_killed_process_are_delivered_by_another_once(url: str) -> None:
    hold = threading.Event()
    hook = Receiver(hold=hold)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc: subprocess.Popen[str] | None = None
    try:
        with SqlStore(url) as store:
            service_at(store, 0).add_rule(["task_failed"], WebhookChannel(hook.url))
            proc = subprocess.Popen([sys.executable, "-c", RAISER, url], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    text=True)  # fmt: skip
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "queued"  # bounded by the child's sleep of 60 s at worst
            assert hook.got.wait(30), "the child began sending its alert (the receiver holds it)"
            (alert,) = store.list_alerts()
            assert alert.status == "pending" and alert.owner is not None and f":{proc.pid}:" in alert.owner
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            hold.set()  # from now on the receiver answers at once

            assert service_at(store, 0).take_over() == 0, "its lease has not lapsed yet"
            heard: list[dict[str, Any]] = []
            rescuer, second = service_at(store, LEASE_SECONDS + 1), service_at(store, LEASE_SECONDS + 1)
            for service in (rescuer, second):
                service.engine.bus.subscribe(heard.append, ["sla_missed"])
            assert rescuer.keep() == 1 and second.keep() == 0, "taken over once"
            assert rescuer.flush(10)
            wait_until(lambda: store.list_alerts(status="sent"), 10, "the delivery of the taken-over alert")
            (sent,) = store.list_alerts()
            assert (sent.alert_id, sent.owner, sent.attempts) == (alert.alert_id, rescuer.owner, 1)
            bodies = [json.loads(body) for _, body in hook.requests]
            assert [b["alert_id"] for b in bodies] == [alert.alert_id] * 2, "at least once across the crash"
            assert [(e["event"], e["name"], e["state"]) for e in heard] == [("sla_missed", "add", "queued")]
            assert second.sla.check() == 0 and rescuer.sla.check() == 0, "raised once"
            for service in (rescuer, second):
                service.close()
    finally:
        hold.set()
        hook.close()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
