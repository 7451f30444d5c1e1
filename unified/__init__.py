"""unified: a workflow orchestrator that runs in-process, on SQLite, or across machines on PostgreSQL.

The public names below load on first use, so ``import unified`` stays light (no SQLAlchemy, no web framework).
``unified.task`` is both the module holding :class:`Task` and the decorator that registers task functions
(``@unified.task`` or ``@unified.task(name=..., max_retries=...)``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "unified.task",
    "TaskContext": "unified.task",
    "TaskState": "unified.task",
    "RetryPolicy": "unified.task",
    "TaskManager": "unified.task_manager",
    "Workflow": "unified.workflow.workflow",
    "WorkflowManager": "unified.workflow.workflow",
    "WorkflowRun": "unified.workflow.workflow",
    "When": "unified.scheduler",
    "FakeClock": "unified.utils",
    "configure_logging": "unified.logger",
    "UnifiedError": "unified.errors",
    "ValidationError": "unified.errors",
    "NotFoundError": "unified.errors",
    "ConflictError": "unified.errors",
    "CycleError": "unified.errors",
    "TaskFailedError": "unified.errors",
}

__all__ = ["__version__", "task", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "task":  # the submodule, whose module object is callable as the decorator
        return importlib.import_module("unified.task")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'unified' has no attribute {name!r}")
