"""Submitting: turning Task specs into stored task instances (ad-hoc, or the tasks of a new run).

A mixin of :class:`unified.engine.Engine`, using its store, batches and listeners. The tasks of one submit are
checked against what they depend on (missing names, cycles) and inserted in one transaction; those whose
dependencies are met are queued, and a worker pool listening for claimable tasks claims them in that same
transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from unified import events as ev
from unified.errors import StoreConflict, UnknownDependencyError, ValidationError
from unified.functions import FunctionRegistry
from unified.graph import validate_graph
from unified.store.base import Store
from unified.store.records import Dependant, RunRecord, SlaWatchRecord, TaskRecord
from unified.task import Task, check_dict, check_number
from unified.task_records import Spec, global_id, new_records
from unified.utils import Clock, check_params, new_id, to_json

log = logging.getLogger("unified.engine")

CONFLICT_RETRIES = 3  # runs of a submit the database aborted to break a deadlock


class Submitting:
    """Engine's submits and run starts (mixed in: see the module docstring for what it uses)."""

    store: Store
    clock: Clock
    functions: FunctionRegistry
    _local: threading.local
    _run_cache: dict[str, RunRecord]
    _submit_listeners: list[Callable[[list[TaskRecord], RunRecord | None], None]]
    _claimable_listeners: list[Callable[[int], None]]
    _queueing_listeners: list[Callable[[bool], None]]
    batch: Callable[..., AbstractContextManager[None]]
    _notify_ready: Callable[[int], None]
    _holding: Callable[[float], None]
    _emit: Callable[..., None]
    after_commit: Callable[[Callable[[], None]], None]
    _release_dependants: Callable[[list[TaskRecord], dict[str, list[Dependant]], float], set[str]]

    def create_run(
        self,
        workflow_id: str | None,
        version: int | None,
        tasks: Iterable[Task],
        params: dict[str, Any] | None = None,
        trigger: str = "manual",
        metadata: dict[str, Any] | None = None,
        schedule_id: str | None = None,
    ) -> str:
        """Start a run of ``tasks`` and return its id."""
        return self._start_run(workflow_id, version, self._specs(list(tasks)), params, trigger, metadata, schedule_id)

    def _start_run(
        self,
        workflow_id: str | None,
        version: int | None,
        specs: list[Spec],
        params: dict[str, Any] | None,
        trigger: str,
        metadata: dict[str, Any] | None,
        schedule_id: str | None,
    ) -> str:
        check_dict("params", params, "parameter names")
        check_params(params, "the run's params")
        now = self.clock.now()
        run = RunRecord(
            new_id(),
            workflow_id,
            version,
            "running",
            dict(params or {}),
            trigger,
            now,
            now,
            None,
            dict(metadata or {}),
            schedule_id,
        )
        self._run_cache[run.run_id] = run  # submit's listeners see the run
        sla = run.metadata.get("sla_seconds")
        try:
            with self.batch():
                self.store.insert_run(run)
                if sla:  # watched by any process from now on (see unified.alerts.SlaWatch)
                    self.store.insert_sla_watches([SlaWatchRecord("run", run.run_id, now + float(sla), float(sla))])
                self._submit_specs(specs, run.run_id, schedule_id)
        except BaseException:
            self._run_cache.pop(run.run_id, None)
            raise
        return run.run_id

    def start_workflow(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        version: int | None = None,
        trigger: str = "manual",
        metadata: dict[str, Any] | None = None,
        schedule_id: str | None = None,
    ) -> str:
        """Start a run of a stored workflow (its draft, frozen first if it changed, or ``version``); returns the id."""
        if version is not None:  # a number: "1" would find version 1 on a SQL store and nothing on the memory store
            check_number("version", version, "at least 1", whole=True)
        if version is None:  # the draft, frozen as a new version if it changed since the current one
            frozen = self.store.freeze_draft(workflow_id, self.clock.now())
        else:
            self.store.get_workflow(workflow_id)  # an unknown workflow says so before its versions are looked up
            frozen = self.store.get_version(workflow_id, version)
        # the frozen specs (this start's own copies) become the run's task records as they are; those whose
        # function is not here are checked first, without building their Tasks, so a version whose lambdas are gone
        # stores nothing (only a lost function fails the check)
        lost = [spec for spec in frozen.tasks if self.functions.lost(spec)]
        if lost:  # registered again here since?
            self.functions.adopt(lost, self.store.get_workflow(workflow_id).tasks)
        for spec in lost:
            try:
                self.functions.check(spec)
            except ValidationError as exc:
                name = self.store.get_workflow(workflow_id).name
                raise ValidationError(f"version {frozen.number} of workflow {name!r} cannot run: {exc}") from exc
        return self._start_run(workflow_id, frozen.number, frozen.tasks, params, trigger, metadata, schedule_id)

    def submit(
        self,
        tasks: list[Task],
        run_id: str | None = None,
        schedule_id: str | None = None,
        parent: str | None = None,
        named_by_parent: bool = False,
    ) -> list[str]:
        """Store ``tasks`` (ad-hoc when ``run_id`` is None) and queue those whose dependencies are met; a task without
        a ``task_id`` is given one. ``parent``: the id of the task whose attempt adds them (``ctx.add_task``), which
        named them (``named_by_parent``) or not."""
        specs = self._specs(tasks)
        if parent is not None:
            for spec in specs:
                spec["parent"] = parent
                if named_by_parent:
                    spec["named_by_parent"] = True
        if self.store.keeps_objects:  # their first attempts run a copy of the Task as given, not one rebuilt
            for task, spec in zip(tasks, specs, strict=True):
                self.functions.keep(global_id(run_id, spec["task_id"]), spec, task.snapshot())
        return self._submit_specs(specs, run_id, schedule_id)

    def submit_specs(self, specs: list[Spec], schedule_id: str | None = None) -> list[str]:
        """Store ad-hoc tasks given by their specs (as :meth:`Task.spec` makes them; one without a ``task_id`` is
        given one), without building their Tasks: a process that queues work need not have its code."""
        for spec in specs:
            self.functions.check(spec)
            spec["task_id"] = spec.get("task_id") or new_id()
        return self._submit_specs(specs, None, schedule_id)

    def _specs(self, tasks: list[Task]) -> list[Spec]:
        """The stored specs of new ``tasks``, after giving each without one a ``task_id``."""
        specs = []
        for task in tasks:
            task.task_id = task.task_id or new_id()
            spec = self.functions.register(task)
            if not self.store.keeps_objects:  # the user's values of the spec (the rest Task validated), empty skipped
                for what, value in (("arguments", spec["args"]), ("keyword arguments", spec["kwargs"]),
                                    ("metadata", spec["metadata"])):  # fmt: skip
                    if value:
                        to_json(value, f"the {what} of task {task.task_id!r}")
            specs.append(spec)
        return specs

    def _submit_specs(self, specs: list[Spec], run_id: str | None, schedule_id: str | None) -> list[str]:
        now = self.clock.now()
        upstream_ids = {d for s in specs for d in s["dependencies"]} - {s["task_id"] for s in specs}
        if upstream_ids:  # tasks stored earlier: their states are read locked, in the transaction that inserts
            records, unannounced = self._store_new_again_on_conflict(specs, run_id, schedule_id, now, upstream_ids)
        else:
            records, unannounced = self._store_new(specs, run_id, schedule_id, now, upstream_ids)
        run = self._run_cache.get(run_id) if run_id else None
        for listener in self._submit_listeners:
            try:
                listener(records, run)
            except Exception:
                log.exception("submit listener %r failed; the tasks are stored all the same", listener)
        self._notify_ready(unannounced)
        for record in records:
            if record.state == "skipped":
                self._emit(ev.TASK_SKIPPED, record)
        return [r.id for r in records]

    def _store_new_again_on_conflict(
        self, specs: list[Spec], run_id: str | None, schedule_id: str | None, now: float, upstream_ids: set[str]
    ) -> tuple[list[TaskRecord], int]:
        """``_store_new`` in a transaction, run again if the database aborts it to break a deadlock.

        Locking the upstream rows (in id order) can meet a completion that holds one of them and locks its
        dependants: a new task depending on both a task and one of that task's dependants, added as the first one
        finishes. PostgreSQL then aborts one of the two; a submit of its own runs again (up to CONFLICT_RETRIES
        times), while inside a caller's transaction the caller gets the StoreConflict, since all of it was undone.
        """
        attempts = 0
        while True:
            try:
                with self.batch():
                    return self._store_new(specs, run_id, schedule_id, now, upstream_ids)
            except StoreConflict:
                attempts += 1
                if attempts >= CONFLICT_RETRIES or getattr(self._local, "depth", 0):
                    raise
                log.info("adding %d task(s) met a deadlock and runs again (attempt %d)", len(specs), attempts + 1)

    def _store_new(
        self, specs: list[Spec], run_id: str | None, schedule_id: str | None, now: float, upstream_ids: set[str]
    ) -> tuple[list[TaskRecord], int]:
        """Check the tasks of ``specs`` against the stored ``upstream_ids`` they depend on and insert their records;
        returns the records and how many queued ones are still to be announced to the ready listeners.

        Read unlocked, an upstream task could succeed between the read and the insert: its release would not find
        the new task yet, and the new task would stay pending for good (a dynamic fan-in added while its last
        upstream task finishes). ``lock_tasks`` holds the upstream rows until the insert commits."""
        upstream = [global_id(run_id, d) for d in upstream_ids]
        locked = self.store.lock_tasks(upstream, for_dependant=True) if upstream else []
        existing = {r.task_id: r for r in locked}
        scope = "the run" if run_id else "the queued tasks"
        missing = upstream_ids - existing.keys()
        if missing:
            spec = next(s for s in specs if missing & set(s["dependencies"]))
            dep = sorted(missing & set(spec["dependencies"]))[0]
            raise UnknownDependencyError(
                f"task {spec['task_id']!r} depends on {dep!r}, which is not in {scope}: add {dep!r} first or fix the "
                "id (an ad-hoc task depends on ids queue_task returned)"
            )
        if any(s["dependencies"] for s in specs):  # without any there is nothing to check (a lone queue_task)
            validate_graph({s["task_id"]: s["dependencies"] for s in specs}, existing=existing.keys(), scope=scope)
        functions = self.functions
        records = new_records(specs, run_id, schedule_id, now, existing, functions.holder_of)
        holding = False
        for record in records:
            if record.holder is not None:
                functions.hold(record.id, record.spec)
                holding = True
        if holding:
            self._holding(now)
        queued = sum(r.state == "queued" for r in records)
        # the SLA deadlines, stored with the tasks so that any process watches them (see unified.alerts.SlaWatch)
        watches = [SlaWatchRecord("task", r.id, now + sla, sla) for r in records if (sla := r.spec.get("sla_seconds"))]
        if queued and self._claimable_listeners:  # claimed in the inserting transaction (see on_claimable)
            # only a transaction of its own: inside a caller's, the claim waits for the caller's commit
            marks = () if getattr(self._local, "depth", 0) else self._queueing_listeners
            for listener in marks:
                listener(True)
            try:
                with self.batch():
                    self.store.insert_tasks(records)
                    if watches:
                        self.store.insert_sla_watches(watches)
                    self._local.claimable += queued
                    self._notify_ready(queued)  # netted against what the claim takes
            finally:
                for listener in marks:
                    listener(False)
            return records, 0
        if watches:
            with self.batch():
                self.store.insert_tasks(records)
                self.store.insert_sla_watches(watches)
        else:
            self.store.insert_tasks(records)  # its own transaction: no savepoint around a multi-row insert
        return records, queued
