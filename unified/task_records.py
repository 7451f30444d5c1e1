"""The task records the engine makes and reads: store-wide ids, the record of a new task from its spec, and the
results a task's upstream tasks hand it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from unified.store.records import TaskRecord
from unified.task import BAD_STATES

Spec = dict[str, Any]  # Task.spec(): what a task runs and how, as stored


def global_id(run_id: str | None, task_id: str) -> str:
    """The store-wide id of a task: its own id for ad-hoc tasks, ``run_id.task_id`` inside a run."""
    return task_id if run_id is None else f"{run_id}.{task_id}"


def new_record(
    spec: Spec,
    run_id: str | None,
    schedule_id: str | None,
    now: float,
    existing: dict[str, TaskRecord],
    holder: str | None = None,
) -> TaskRecord:
    """The record of a new task, queued unless ``existing`` upstream tasks (by task id) hold it back or ended badly;
    ``spec`` may have been stored by an older version, hence the defaults. ``holder``: see TaskRecord."""
    task_id, deps = spec["task_id"], spec["dependencies"]
    state, reason, queued_at = "queued", None, now
    bad = [existing[d] for d in deps if d in existing and existing[d].state in BAD_STATES]
    if bad:
        state, reason, queued_at = "skipped", f"upstream task {bad[0].task_id!r} ended {bad[0].state}", None
    elif any(d in existing and existing[d].state != "success" for d in deps):
        state, queued_at = "pending", None
    return TaskRecord(
        id=global_id(run_id, task_id),
        task_id=task_id,
        run_id=run_id,
        name=spec.get("name") or task_id,
        spec=spec,
        state=state,
        priority=spec.get("priority", 0),
        queue=spec.get("queue", "default"),
        dependencies=[global_id(run_id, d) for d in deps],
        metadata=dict(spec.get("metadata") or {}),
        created_at=now,
        queued_at=queued_at,
        finished_at=now if state == "skipped" else None,
        reason=reason,
        schedule_id=schedule_id,
        holder=holder,
    )


def upstream_results(dependencies: Iterable[str], upstream: Iterable[TaskRecord]) -> dict[str, Any]:
    """The results of ``upstream`` by task id, in the order of ``dependencies`` (their global ids)."""
    by_id = {u.id: u for u in upstream}
    return {by_id[d].task_id: by_id[d].result for d in dependencies if d in by_id}
