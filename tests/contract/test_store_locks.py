"""lock_tasks and lock_run: fresh records in id order inside a transaction; unknown runs are named."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from unified.errors import NotFoundError
from unified.store.base import RunRecord, Store, TaskRecord


def test_lock_tasks_returns_the_current_records_in_id_order(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task("b"), make_task("a"), make_task("c")])
    with store.atomic():
        store.update_task("b", "queued", state="running")
        locked = store.lock_tasks(["c", "b", "a", "b", "missing"])
    assert [(t.id, t.state) for t in locked] == [("a", "queued"), ("b", "running"), ("c", "queued")]
    assert store.lock_tasks([]) == []


def test_lock_run_needs_an_existing_run(store: Store) -> None:
    store.insert_run(RunRecord("r1", None, None, "running", created_at=1.0))
    with store.atomic():
        store.lock_run("r1")
        assert store.update_run("r1", "running", state="success")
    with pytest.raises(NotFoundError, match="'nope'"), store.atomic():
        store.lock_run("nope")
