"""Waiting where nothing can ever run the work fails at once instead of blocking for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import tasks as helpers
from unified.errors import ConflictError, TimeoutExpired
from unified.task import Task
from unified.task_manager import TaskManager


def test_waiting_on_a_private_memory_store_without_runners_says_how_to_run_the_work() -> None:
    with TaskManager(max_workers=0, run_scheduler=False) as tm:
        task_id = tm.queue_task(helpers.add, args=(1, 2))
        with pytest.raises(ConflictError, match=r"max_workers=0.*run_until_idle"):
            tm.get_result(task_id, timeout=5)  # without the check: TimeoutExpired after 5 s
        assert tm.run_until_idle() == 1
        assert tm.get_result(task_id) == 3  # finished work is still handed over


def test_waiting_after_shutdown_on_a_private_memory_store_fails_at_once() -> None:
    tm = TaskManager(max_workers=1, run_scheduler=False)
    tm.shutdown()
    task_id = tm.engine.submit([Task(func=helpers.add, args=(1, 2))])[0]  # queue_task refuses after shutdown
    with pytest.raises(ConflictError, match="shut down"):
        tm.wait(task_id, timeout=5)


def test_a_shared_store_without_local_runners_still_waits_for_other_processes(tmp_path: Path) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path}/q.db", max_workers=0, run_scheduler=False) as tm:
        task_id = tm.queue_task(helpers.add, args=(1, 2))
        with pytest.raises(TimeoutExpired):
            tm.get_result(task_id, timeout=0.05)
