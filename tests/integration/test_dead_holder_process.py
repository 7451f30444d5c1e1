"""A real process holding a lambda's task, killed with SIGKILL: its heartbeat stops, and once its proof of life expires
another engine's sweep cancels the task, saying why; while the process lived its heartbeat kept the proof fresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.postgres import database_url
from tests.helpers.workers import ROOT, wait_until
from unified.engine import Engine
from unified.interventions import HOLDER_SECONDS
from unified.store.sql import SqlStore
from unified.utils import FakeClock

# a pool serving the default queue (its heartbeat renews the proof every 0.2 s); the held task waits in another queue
HOLDER = """
import sys, time
from unified.task_manager import TaskManager
tm = TaskManager(store=sys.argv[1], max_workers=1, lease_seconds=1.0, heartbeat_seconds=0.2, queues=["default"])
task_id = tm.queue_task(lambda: "never", queue="later")
print(task_id, tm.engine.functions.holder, flush=True)
time.sleep(60)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database two processes share."""
    with database_url(request.param, tmp_path) as shared:
        yield shared


def test_the_task_of_a_holder_killed_outright_is_canceled_once_its_proof_expires(url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        task_id, holder = proc.stdout.readline().split()  # bounded by the child's sleep of 60 s at worst
        queued_at = time.time()
        with SqlStore(url) as store:
            # its heartbeat renews the proof: soon it lasts beyond what the submit wrote
            wait_until(lambda: store.expired_holders(queued_at + HOLDER_SECONDS + 0.5) == [], 10, "a renewal")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert Engine(store, FakeClock(time.time())).expire_holders() == 0  # not expired yet
            assert store.get_task(task_id).state == "queued"
            assert Engine(store, FakeClock(time.time() + HOLDER_SECONDS + 1)).expire_holders() == 1
            record = store.get_task(task_id)
            assert record.state == "canceled" and holder in (record.reason or "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
