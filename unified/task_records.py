"""The task records the engine makes and reads: store-wide ids, the record of a new task from its spec, and the
results a task's upstream tasks hand it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from unified.store.records import TaskRecord
from unified.task import BAD_STATES

Spec = dict[str, Any]  # Task.spec(): what a task runs and how, as stored


def global_id(run_id: str | None, task_id: str) -> str:
    """The store-wide id of a task: its own id for ad-hoc tasks, ``run_id.task_id`` inside a run."""
    return task_id if run_id is None else f"{run_id}.{task_id}"


def new_records(
    specs: list[Spec],
    run_id: str | None,
    schedule_id: str | None,
    now: float,
    existing: dict[str, TaskRecord],
    holder_of: Callable[[Spec], str | None],
) -> list[TaskRecord]:
    """The records of new tasks, one per spec: each queued unless an upstream task holds it back (pending: a
    batch-mate, or one of ``existing``, the upstream tasks by task id, that has not succeeded) or ended badly
    (skipped). A spec may have been stored by an older version, hence the defaults. ``holder_of``: see TaskRecord.
    """
    in_batch = {s["task_id"] for s in specs}
    records = []
    for spec in specs:
        task_id, deps = spec["task_id"], spec["dependencies"]
        state, reason, queued_at = "queued", None, now
        if deps:
            bad = [existing[d] for d in deps if d in existing and existing[d].state in BAD_STATES] if existing else ()
            if bad:
                state, reason, queued_at = "skipped", f"upstream task {bad[0].task_id!r} ended {bad[0].state}", None
            elif not in_batch.isdisjoint(deps) or any(d in existing and existing[d].state != "success" for d in deps):
                state, queued_at = "pending", None
        # positional: faster than by keyword for its 24 fields (W2's 1,000 records: 1.4 ms against 1.9 in all)
        record = TaskRecord(
            global_id(run_id, task_id), task_id, run_id, spec.get("name") or task_id, spec, state,
            spec.get("priority", 0), spec.get("queue", "default"),
            [global_id(run_id, d) for d in deps], 0, None, None,
            dict(spec.get("metadata") or {}), now, queued_at, None, now if state == "skipped" else None, None, None,
            None, reason, 0, schedule_id, holder_of(spec),
        )  # fmt: skip
        records.append(record)
    return records


def upstream_results(dependencies: Iterable[str], upstream: Iterable[TaskRecord]) -> dict[str, Any]:
    """The results of ``upstream`` by task id, in the order of ``dependencies`` (their global ids)."""
    by_id = {u.id: u for u in upstream}
    return {by_id[d].task_id: by_id[d].result for d in dependencies if d in by_id}
