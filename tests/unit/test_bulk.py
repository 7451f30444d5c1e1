"""Queueing many tasks in one transaction (TaskManager.batch) and waiting for many at once (wait_all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unified.errors import ConflictError, NotFoundError, TimeoutExpired
from unified.task_manager import TaskManager


def double(x: int) -> int:
    """Twice x."""
    return 2 * x


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'bulk.db'}"


def test_tasks_queued_in_a_batch_all_run_and_wait_all_returns_them_in_order(url: str) -> None:
    with TaskManager(store=url, max_workers=2) as tm:
        with tm.batch():
            ids = [tm.queue_task(double, args=(i,)) for i in range(300)]
        results = tm.wait_all(ids, timeout=10)
    assert [m["task_id"] for m in results] == ids
    assert [m["result"] for m in results] == [2 * i for i in range(300)]
    assert all(m["state"] == "success" and len(m["history"]) == 1 for m in results)


def test_a_batch_that_raises_stores_none_of_its_tasks(tmp_path: Path) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path / 'bulk.db'}", max_workers=0) as tm:
        with pytest.raises(RuntimeError, match="stop"), tm.batch():
            tm.queue_task(double, args=(1,))
            raise RuntimeError("stop")
        assert tm.store.count_tasks_by_state() == {}


def test_wait_all_names_an_unknown_task_and_times_out_on_unfinished_ones(url: str) -> None:
    with TaskManager(store=url, max_workers=0) as tm:  # nothing runs the queued task
        queued = tm.queue_task(double, args=(1,))
        with pytest.raises(NotFoundError, match="nope"):
            tm.wait_all([queued, "nope"], timeout=1)
        # a private memory store with no runners can never finish it: said at once rather than at the timeout
        with pytest.raises(ConflictError if url == "memory://" else TimeoutExpired, match=queued):
            tm.wait_all([queued], timeout=0.05)
