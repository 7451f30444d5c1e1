"""Kept for imports written before the split: ``@task`` and its registry now live in :mod:`unified.registration`
(layer 1, also reachable as ``@unified.task``), the workflows folder in :mod:`unified.workflows_folder`."""

from __future__ import annotations

from unified.registration import REGISTRY, TASK_OPTIONS, RegisteredTask, TaskRegistry, task
from unified.workflows_folder import LoadError, LoadReport, WorkflowsFolder, load_workflows

__all__ = [
    "REGISTRY",
    "TASK_OPTIONS",
    "LoadError",
    "LoadReport",
    "RegisteredTask",
    "TaskRegistry",
    "WorkflowsFolder",
    "load_workflows",
    "task",
]
