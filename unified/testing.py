"""Public helpers for testing code that uses unified: a fake clock and draining a manager without threads.

clock = FakeClock()
with TaskManager(max_workers=0, clock=clock) as tm:
    task_id = tm.queue_task(flaky, max_retries=2, retry_delay_seconds=30)
    run_until_idle(tm)          # attempt 1 fails: the task is retrying until clock time + 30 s
    clock.advance(30)
    run_until_idle(tm)          # attempt 2 runs
"""

from __future__ import annotations

from typing import Any

from unified.utils import FakeClock


def run_until_idle(manager: Any) -> int:
    """Run every task of a TaskManager or WorkflowManager that is ready now, in this thread; returns the count."""
    task_manager = getattr(manager, "task_manager", manager)
    return task_manager.run_until_idle()


__all__ = ["FakeClock", "run_until_idle"]
