"""Worker pools on one SQLite file hear each other's work within moments, not at their next poll."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.helpers.workers import wait_until
from unified.engine import Engine
from unified.store.sql import SqlStore
from unified.store.sqlite_watch import Watcher
from unified.task import Task
from unified.worker import WorkerPool


def test_a_pool_runs_work_another_store_queued_long_before_its_poll(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    with SqlStore(url) as queuer, SqlStore(url) as served:  # two processes' stores, as far as SQLite can tell
        pool = WorkerPool(Engine(served), max_workers=2, poll_seconds=60.0)
        pool.start()
        try:
            Engine(queuer).submit([Task(task_id="elsewhere", func="tests.helpers.tasks:add", args=(1, 2))])
            wait_until(lambda: served.get_task("elsewhere").state == "success", 5, "the task to run (not at the poll)")
        finally:
            pool.stop()


def test_a_watcher_calls_back_from_its_thread_until_stopped(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path}/stop.db") as store:
        heard = threading.Event()
        watcher = Watcher(tmp_path / "stop.db", lambda queue: heard.set(), interval=0.01)
        try:
            Engine(store).submit([Task(task_id="t", func="tests.helpers.tasks:add", args=(1, 2))])
            assert heard.wait(5), "the watcher did not see the commit"
        finally:
            watcher.stop()
        assert not watcher._thread.is_alive()


def test_a_watcher_of_a_missing_file_logs_it_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "unified.db"
    watcher = Watcher(missing, lambda queue: None, interval=0.01)
    try:
        wait_until(lambda: watcher._failures >= 1, 5, "the watcher to fail to open the file")
    finally:
        watcher.stop()
    assert not missing.exists()


def test_a_quiet_file_is_looked_at_less_often_and_a_commit_is_still_heard(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path}/quiet.db") as store:
        heard = threading.Event()
        watcher = Watcher(tmp_path / "quiet.db", lambda queue: heard.set(), interval=0.01, quiet=0.08)
        try:
            wait_until(lambda: watcher.every == 0.08, 5, "the watcher to back off on a quiet file")
            Engine(store).submit([Task(task_id="t", func="tests.helpers.tasks:add", args=(1, 2))])
            assert heard.wait(5), "the commit was not heard after the quiet spell"
        finally:
            watcher.stop()
