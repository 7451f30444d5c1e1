"""Alert rules stored in the database fire from the process where the event happens: a `unified worker`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from unified.alerts import LogChannel
from unified.service import run_worker
from unified.task_manager import TaskManager


def test_a_worker_process_delivers_the_stored_alert_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/alerts.db"
    with TaskManager(store=url, max_workers=0, run_scheduler=False) as tm:
        tm.add_alert_rule(["task_failed"], LogChannel())
        task_id = tm.queue_task("tests.helpers.tasks:boom", args=("worker-side failure",))
        stop = threading.Event()
        worker = threading.Thread(target=run_worker, args=(url,), kwargs={"concurrency": 1, "stop": stop,
                                                                          "poll_seconds": 0.05})  # fmt: skip
        worker.start()
        try:
            assert tm.wait(task_id, timeout=10)["state"] == "failure"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not [a for a in tm.list_alerts() if a["status"] == "sent"]:
                time.sleep(0.02)
        finally:
            stop.set()
            worker.join(10)
        (alert,) = tm.list_alerts()
    assert alert["event"] == "task_failed" and alert["status"] == "sent"
    assert alert["alert"]["task_id"] == task_id
