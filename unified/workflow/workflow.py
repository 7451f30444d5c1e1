"""The seed's workflow facade: named task graphs, their frozen versions, and runs of them.

    workflow_manager = WorkflowManager()
    workflow_id = workflow_manager.register_workflow(name="My Workflow", description="Sample workflow")
    workflow_manager.add_task_to_workflow(workflow_id, Task(task_id="task1", func=lambda: "Step 1"))
    result = workflow_manager.run_workflow(workflow_id)

Edits to a workflow coalesce in its draft; the first run after an edit freezes the draft as a new version
(numbered, content-hashed, immutable). Every run records the version it ran.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from unified.errors import ConflictError, DuplicateTaskError, NotFoundError, ValidationError
from unified.graph import check_new_tasks, validate_graph
from unified.scheduler import When, fires_as
from unified.store import Store
from unified.store.records import RunRecord, WorkflowRecord
from unified.task import RUN_STATES, Task, check_sla, check_state_filter, check_task
from unified.task_manager import ScheduleMethods, TaskManager, tasks_metadata
from unified.utils import iso, new_id


class Workflow:
    """A named task graph defined in code; register it with :meth:`WorkflowManager.register`."""

    def __init__(
        self, name: str, description: str = "", tasks: Iterable[Task] = (), schedule: When | None = None
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            got = repr(name) if isinstance(name, str) else type(name).__name__
            raise ValidationError(f"a workflow needs a non-empty name (a string), not {got}")
        if not isinstance(description, str):
            raise ValidationError(f"a workflow's description must be a string, not {type(description).__name__}")
        self.name = name
        self.description = description
        self.schedule = schedule  # registering the workflow keeps one schedule of it in step with this
        self.tasks: dict[str, Task] = {}
        self.add_tasks(tasks)

    def add_tasks(self, tasks: Iterable[Task]) -> list[Task]:
        """Add ``tasks`` together, in any order: each may depend on the others and on tasks already in the
        workflow (a cycle among them is a CycleError). Returns them, each with its ``task_id``."""
        tasks = list(tasks)
        new: dict[str, Task] = {}
        for task in tasks:
            check_task(task, "a Workflow")
            if task.task_id is None:
                task.task_id = _fresh_task_id(task, new.keys() | self.tasks.keys())
            elif task.task_id in new:
                raise DuplicateTaskError(f"task id {task.task_id!r} is given twice: choose another task_id")
            new[task.task_id] = task
        graph = {task_id: task.dependencies for task_id, task in new.items()}
        for task_id in check_new_tasks(graph, self.tasks.keys(), f"workflow {self.name!r}"):  # dependencies first
            self.tasks[task_id] = new[task_id]
        return tasks

    def add_task(self, task: Task) -> Task:
        """Add ``task``; its dependencies must already be in the workflow (:meth:`add_tasks` takes several at once, in
        any order). Returns the task."""
        check_task(task, "Workflow.add_task")
        if task.task_id is None:
            task.task_id = _fresh_task_id(task, self.tasks)
        check_new_tasks({task.task_id: task.dependencies}, self.tasks.keys(), f"workflow {self.name!r}")
        self.tasks[task.task_id] = task
        return task


def _check_graph(specs: list[dict[str, Any]], name: str) -> None:
    """Refuse a graph with a task id twice, an unknown dependency or a cycle."""
    ids = [spec["task_id"] for spec in specs]
    if len(set(ids)) != len(ids):
        twice = sorted({task_id for task_id in ids if ids.count(task_id) > 1})
        raise DuplicateTaskError(f"workflow {name!r} has tasks {twice} twice: give each task its own task_id")
    validate_graph({spec["task_id"]: spec["dependencies"] for spec in specs}, scope=f"workflow {name!r}")


def _fresh_task_id(task: Task, taken: Container[str]) -> str:
    base = task.name or "task"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


@dataclass
class WorkflowRun:
    """One run of a workflow version: its state, timestamps, results and every task's metadata."""

    run_id: str
    workflow_id: str | None
    version: int | None
    state: str
    started_at: str | None
    finished_at: str | None
    params: dict[str, Any] = field(default_factory=dict)
    trigger: str = "manual"
    results: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class WorkflowManager(ScheduleMethods):
    """Registers workflows, freezes their versions, runs and schedules them on a TaskManager's engine.

    Without ``task_manager`` it makes one on ``store``; ``run_scheduler=False`` keeps that one from firing
    schedules in the background.
    """

    def __init__(
        self, store: str | Store | None = None, task_manager: TaskManager | None = None, *, run_scheduler: bool = True
    ) -> None:
        self._owns_manager = task_manager is None
        self.task_manager = task_manager or TaskManager(store=store, run_scheduler=run_scheduler)
        self.engine = self.task_manager.engine
        self.store = self.task_manager.store
        self.scheduler = self.task_manager.scheduler
        self.alerts = self.task_manager.alerts

    # -- defining ----------------------------------------------------------------------------------------
    def register_workflow(self, name: str, description: str = "") -> str:
        """Create an empty workflow and return its id."""
        Workflow(name, description)  # validates the name
        now = self.engine.clock.now()
        record = WorkflowRecord(new_id(), name, description, [], None, now, now)
        self.store.put_workflow(record)
        return record.workflow_id

    def register(self, workflow: Workflow) -> str:
        """Store a workflow defined in code; a workflow of the same name gets it as its new draft. Returns its id."""
        if not isinstance(workflow, Workflow):
            what = type(workflow).__name__
            raise ValidationError(f"register takes a Workflow, not {what}: register_workflow(name) makes an empty one")
        now = self.engine.clock.now()
        specs = [self.engine.functions.register(t, for_good=True) for t in workflow.tasks.values()]
        _check_graph(specs, workflow.name)  # Workflow checks what it is given, not changes made to its tasks since
        existing = self.store.find_workflow(workflow.name)
        if existing is None:
            record = WorkflowRecord(new_id(), workflow.name, workflow.description, specs, None, now, now)
            try:
                self.store.put_workflow(record)
            except ConflictError:  # another process registered the name meanwhile (names are unique): update that
                existing = self.store.find_workflow(workflow.name)
                if existing is None:  # and deleted it again: there is nothing left to update
                    raise
        if existing is not None:
            with self.store.atomic():
                record = self.store.lock_workflow(existing.workflow_id)
                record.tasks, record.description, record.updated_at = specs, workflow.description, now
                self.store.put_workflow(record)
        self._sync_code_schedule(record.workflow_id, workflow)
        return record.workflow_id

    def _sync_code_schedule(self, workflow_id: str, workflow: Workflow) -> None:
        """Keep the one schedule a workflow declares in code (``Workflow(schedule=When(...))``) equal to it."""
        name = f"{workflow.name} (declared in code)"
        declared = [
            s for s in self.store.list_schedules()
            if s.name == name and s.target_type == "workflow" and s.target.get("workflow_id") == workflow_id
        ]  # fmt: skip
        want = workflow.schedule
        for schedule in declared:
            if want is not None and len(declared) == 1 and fires_as(schedule, want):
                return
            self.scheduler.remove(schedule.schedule_id)
        if want is not None:
            self.scheduler.add_workflow(workflow_id, want, name=name)

    def add_task_to_workflow(self, workflow_id: str, task: Task) -> str:
        """Add ``task`` to the workflow's draft; refuses duplicates, unknown dependencies and cycles. Returns its id."""
        check_task(task, "add_task_to_workflow")
        with self.store.atomic():
            record = self.store.lock_workflow(workflow_id)
            existing = {s["task_id"] for s in record.tasks}
            if task.task_id is None:
                task.task_id = _fresh_task_id(task, existing)
            check_new_tasks({task.task_id: task.dependencies}, existing, f"workflow {record.name!r}")
            record.tasks.append(self.engine.functions.register(task, for_good=True))
            record.updated_at = self.engine.clock.now()
            self.store.put_workflow(record)
        return task.task_id

    def remove_task_from_workflow(self, workflow_id: str, task_id: str) -> None:
        """Remove a task from the draft; refused while other tasks depend on it."""
        with self.store.atomic():
            record = self.store.lock_workflow(workflow_id)
            if not any(s["task_id"] == task_id for s in record.tasks):
                raise NotFoundError(f"workflow {record.name!r} has no task {task_id!r}")
            users = [s["task_id"] for s in record.tasks if task_id in s["dependencies"]]
            if users:
                raise ConflictError(f"tasks {users} depend on {task_id!r}: remove them or their dependency first")
            record.tasks = [s for s in record.tasks if s["task_id"] != task_id]
            record.updated_at = self.engine.clock.now()
            self.store.put_workflow(record)

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove a workflow, its versions and its schedules; its runs and their fires stay as history."""
        with self.store.atomic():
            self.store.delete_workflow(workflow_id)
            for schedule in self.store.list_schedules():  # they would fail every fire from now on
                if schedule.target_type == "workflow" and schedule.target.get("workflow_id") == workflow_id:
                    self.scheduler.remove(schedule.schedule_id)

    # -- reading -----------------------------------------------------------------------------------------
    def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        """A workflow as a dict: id, name, description, current_version, draft tasks, timestamps."""
        return _workflow_dict(self.store.get_workflow(workflow_id))

    def list_workflows(self) -> list[dict[str, Any]]:
        """Every workflow as a dict, oldest first."""
        return [_workflow_dict(w) for w in self.store.list_workflows()]

    def get_workflows(self, workflow_ids: list[str]) -> list[dict[str, Any]]:
        """The workflows with these ids as dicts, in the order given, leaving out any that do not exist."""
        return [_workflow_dict(w) for w in self.store.get_workflows(workflow_ids)]

    def list_versions(self, workflow_id: str) -> list[dict[str, Any]]:
        """Each frozen version: number, hash, created_at and task specs."""
        self.store.get_workflow(workflow_id)
        return [
            {"number": v.number, "hash": v.hash, "created_at": iso(v.created_at), "tasks": v.tasks}
            for v in self.store.list_versions(workflow_id)
        ]

    # -- running -----------------------------------------------------------------------------------------
    def start_workflow(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        version: int | None = None,
        trigger: str = "manual",
        metadata: dict[str, Any] | None = None,
        sla_seconds: float | None = None,
    ) -> str:
        """Start a run of the workflow (its draft, or an earlier ``version``) and return the run id at once.

        With ``sla_seconds``, an ``sla_missed`` alert goes out if the run has not finished that long after now.
        """
        self._check_open()
        metadata = dict(metadata or {})
        if check_sla(sla_seconds) is not None:
            metadata["sla_seconds"] = sla_seconds
        return self.engine.start_workflow(workflow_id, params, version, trigger, metadata)

    def schedule_workflow(
        self,
        workflow_id: str,
        *,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str = "UTC",
        start_at: datetime | float | str | None = None,
        end_at: datetime | float | str | None = None,
        catchup: bool = False,
        max_active_runs: int = 1,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        sla_seconds: float | None = None,
    ) -> str:
        """Run the workflow on a cron expression or every ``interval_seconds``; returns the schedule id.

        See docs/scheduling.md for time zones, daylight saving, ``catchup`` and ``max_active_runs``.
        """
        self._check_open()
        when = When(cron, interval_seconds, timezone, start_at, end_at, catchup, max_active_runs)
        return self.scheduler.add_workflow(workflow_id, when, params, name, sla_seconds)

    def run_workflow(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        version: int | None = None,
        timeout: float | None = None,
    ) -> WorkflowRun:
        """Run the workflow and block until the run ends (or raise TimeoutExpired); returns the run."""
        run_id = self.start_workflow(workflow_id, params, version)
        return self.wait_run(run_id, timeout)

    def wait_run(self, run_id: str, timeout: float | None = None) -> WorkflowRun:
        """Block until the run ends; returns it."""
        self.task_manager._wait_until(
            lambda: self.store.get_run(run_id).state != "running", timeout, f"run {run_id!r}", runs=True
        )
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> WorkflowRun:
        """A run with every task's state and result."""
        return self._run_view(self.store.get_run(run_id))

    def _run_view(self, run: RunRecord) -> WorkflowRun:
        tasks = self.store.run_tasks(run.run_id)
        return WorkflowRun(
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            version=run.version,
            state=run.state,
            started_at=iso(run.started_at),
            finished_at=iso(run.finished_at),
            params=run.params,
            trigger=run.trigger,
            results={t.task_id: t.result for t in tasks if t.state == "success"},
            tasks={t.task_id: metadata for t, metadata in zip(tasks, tasks_metadata(self.store, tasks), strict=True)},
            metadata=run.metadata,
        )

    def list_runs(
        self,
        workflow_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        schedule_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Runs, newest first, optionally of one workflow, in one state, or started by one schedule."""
        check_state_filter(state, RUN_STATES, "run")
        return [self._run_view(r) for r in self.store.list_runs(workflow_id, state, limit, schedule_id=schedule_id)]

    def cancel_run(self, run_id: str) -> int:
        """Cancel every unfinished task of a run; returns how many were canceled."""
        return self.engine.cancel_run(run_id)

    def retry_run(self, run_id: str) -> int:
        """Re-run the failed, timed-out and canceled tasks of a run and what they skipped; returns the count."""
        self._check_open()
        return self.engine.retry_run(run_id)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Stop the task manager this workflow manager created (not one it was given): see
        :meth:`TaskManager.shutdown`."""
        if self._owns_manager:
            self.task_manager.shutdown(wait, timeout)

    def _check_open(self) -> None:
        """Raise ConflictError if its task manager was shut down: nothing would run the work."""
        self.task_manager._check_open()

    def __enter__(self) -> WorkflowManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _workflow_dict(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "workflow_id": record.workflow_id,
        "name": record.name,
        "description": record.description,
        "current_version": record.current_version,
        "tasks": record.tasks,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }
