"""The memory store's workflows and their frozen versions.

A mixin of :class:`unified.store.memory.MemoryStore`, sharing its lock and its runs (a workflow's summary names its
newest run); split out to keep each module small. Every way out copies the task specs, so a caller may change what
it gets without changing the store's.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, TypeVar, cast

from unified.errors import ValidationError, name_taken, not_found
from unified.graph import graph_hash
from unified.store.records import RunRecord, VersionRecord, WorkflowRecord, WorkflowSummary
from unified.store.yielding_lock import YieldingLock
from unified.utils import copy_at, copy_plan

_Graph = TypeVar("_Graph", WorkflowRecord, VersionRecord)


class _StoredSpecs(list):  # type: ignore[type-arg]
    """Task specs as this store keeps them: its own copies, never changed in place, each with its ``copy_plan``, so
    that a copy for a caller (each read, each run's start) looks at the values the plan names only."""

    __slots__ = ("_plans",)

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self._plans = [copy_plan(spec) for spec in specs]  # a copy's plan is its original's
        super().__init__(copy_at(spec, plan) for spec, plan in zip(specs, self._plans, strict=True))

    def copied(self) -> list[dict[str, Any]]:
        """A deep copy of the specs (as ``copy_data``'s), which the caller may change."""
        return [copy_at(spec, plan) for spec, plan in zip(self, self._plans, strict=True)]


def _kept(record: _Graph) -> _Graph:
    """A copy of a caller's workflow or version for the store to keep (see _StoredSpecs)."""
    return dataclasses.replace(record, tasks=_StoredSpecs(record.tasks))


def _with_own_tasks(record: _Graph) -> _Graph:
    """A copy of a stored workflow or version whose task specs the caller may change without changing the store's."""
    return dataclasses.replace(record, tasks=cast(_StoredSpecs, record.tasks).copied())


class MemoryWorkflows:
    """Workflows (their drafts) and versions, in dicts under the store's lock."""

    _lock: YieldingLock
    _runs: dict[str, RunRecord]

    def _init_workflows(self) -> None:
        self._workflows: dict[str, WorkflowRecord] = {}
        self._versions: dict[str, list[VersionRecord]] = defaultdict(list)

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        """Insert or replace a workflow (its ``draft_hash`` computed here; a replace keeps its ``current_version``)."""
        stored = _kept(workflow)
        stored.draft_hash = graph_hash(stored.tasks)
        with self._lock:
            other = self._named(workflow.name)
            if other is not None and other.workflow_id != workflow.workflow_id:
                raise name_taken(workflow.name, other.workflow_id)
            before = self._workflows.get(workflow.workflow_id)
            stored.current_version = before.current_version if before is not None else None
            self._workflows[workflow.workflow_id] = stored

    def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow with this id."""
        with self._lock:
            if workflow_id not in self._workflows:
                raise not_found(f"workflow with id {workflow_id!r}")
            return _with_own_tasks(self._workflows[workflow_id])

    def lock_workflow(self, workflow_id: str) -> WorkflowRecord:
        """As :meth:`get_workflow`: atomic() already holds the one lock."""
        return self.get_workflow(workflow_id)

    def find_workflow(self, name: str) -> WorkflowRecord | None:
        """The workflow named ``name`` (names are unique), or None (copies no other workflow's specs)."""
        with self._lock:
            named = self._named(name)
            return _with_own_tasks(named) if named is not None else None

    def _named(self, name: str) -> WorkflowRecord | None:
        return next((w for w in self._workflows.values() if w.name == name), None)

    def get_workflows(self, workflow_ids: list[str]) -> list[WorkflowRecord]:
        """The workflows with these ids that exist, in the order given."""
        with self._lock:
            return [_with_own_tasks(self._workflows[i]) for i in workflow_ids if i in self._workflows]

    def workflow_summaries(self, workflow_ids: list[str]) -> list[WorkflowSummary]:
        """The summaries of the workflows with these ids that exist, in the order given."""
        with self._lock:
            found = [self._workflows[i] for i in workflow_ids if i in self._workflows]
            newest: dict[str, RunRecord] = {}
            wanted = {w.workflow_id for w in found}
            for run in self._runs.values():  # in insertion order: of runs created at once, the later one is newer
                key = run.workflow_id
                if key is not None and key in wanted:
                    best = newest.get(key)
                    if best is None or run.created_at >= best.created_at:
                        newest[key] = run
            summaries = []
            for w in found:
                last = newest.get(w.workflow_id)
                run = (last.run_id, last.state, last.created_at) if last else ()
                summaries.append(
                    WorkflowSummary(w.workflow_id, w.name, w.description, w.current_version, len(w.tasks), *run)
                )
            return summaries

    def workflow_names(self) -> dict[str, str]:
        """Every workflow's name by its id, oldest first."""
        with self._lock:
            return {w.workflow_id: w.name for w in sorted(self._workflows.values(), key=lambda w: w.created_at)}

    def freeze_draft(self, workflow_id: str, created_at: float) -> VersionRecord:
        """The version matching the workflow's draft, frozen now as the number after the highest if the draft changed
        since the current one (a copy: each run's tasks get their own specs, whatever a task does to its arguments)."""
        with self._lock:
            workflow = self._workflows.get(workflow_id)
            if workflow is None:
                raise not_found(f"workflow with id {workflow_id!r}")
            if not workflow.tasks:
                raise ValidationError(f"workflow {workflow.name!r} has no tasks: add tasks before running it")
            versions = self._versions[workflow_id]
            current = next((v for v in versions if v.number == workflow.current_version), None)
            if current is None or current.hash != workflow.draft_hash:
                number = max((v.number for v in versions), default=0) + 1
                digest: str = workflow.draft_hash  # type: ignore[assignment]  # put_workflow always sets it
                # the version shares the draft's specs: both are this store's own, never edited in place (a put
                # replaces the whole draft), and every way out copies them
                current = VersionRecord(workflow_id, number, digest, workflow.tasks, created_at)
                versions.append(current)
                workflow.current_version = number
            return _with_own_tasks(current)

    def list_workflows(self) -> list[WorkflowRecord]:
        """Every workflow, oldest first."""
        with self._lock:
            return [_with_own_tasks(w) for w in sorted(self._workflows.values(), key=lambda w: w.created_at)]

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove a workflow and its versions."""
        with self._lock:
            if self._workflows.pop(workflow_id, None) is None:
                raise not_found(f"workflow with id {workflow_id!r}")
            self._versions.pop(workflow_id, None)

    def get_version(self, workflow_id: str, number: int) -> VersionRecord:
        """One version of a workflow."""
        with self._lock:
            for version in self._versions.get(workflow_id, ()):
                if version.number == number:
                    return _with_own_tasks(version)
            raise not_found(f"version {number} of workflow {workflow_id!r}")

    def list_versions(self, workflow_id: str) -> list[VersionRecord]:
        """Every version of a workflow, by number."""
        with self._lock:
            return [_with_own_tasks(v) for v in sorted(self._versions.get(workflow_id, ()), key=lambda v: v.number)]
