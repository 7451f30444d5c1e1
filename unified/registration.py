"""Task code registered by name: ``@unified.task`` (also ``unified.registration.task``) and the registry it fills.

``@task`` registers a module-level function under a name with default options (retries, timeout, ...); the
REST API queues only registered names and import paths of modules loaded from the workflows folder
(``unified.workflows_folder``), so a request can never make the server import or run arbitrary code.

This module sits in layer 1 next to :mod:`unified.task`, whose module object is callable and delegates here, so
``import unified`` followed by ``@unified.task`` works without importing anything heavier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from unified.errors import NotFoundError, ValidationError
from unified.task import Task

F = TypeVar("F", bound=Callable[..., Any])

# the Task options a registration may preset and a request may override
TASK_OPTIONS = frozenset(
    {
        "timeout",
        "max_retries",
        "retry_delay_seconds",
        "backoff_factor",
        "max_retry_delay_seconds",
        "jitter",
        "priority",
        "queue",
        "isolation",
        "metadata",
    }
)


@dataclass(frozen=True)
class RegisteredTask:
    """A function registered with ``@task``: its name, the function and its default Task options."""

    name: str
    func: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, task_id: str | None = None, **overrides: Any) -> Task:
        """A Task running this function with the registered options, overridden by ``overrides``."""
        return Task(
            task_id=task_id,
            func=self.func,
            name=overrides.pop("name", None) or self.name,
            **{**self.options, **overrides},
        )


class TaskRegistry:
    """Registered task functions by name (thread-safe)."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}
        self._lock = threading.Lock()

    def add(self, func: Callable[..., Any], name: str | None = None, **options: Any) -> RegisteredTask:
        """Register ``func`` under ``name`` (default: its ``__name__``); re-registering a name replaces it."""
        unknown = set(options) - TASK_OPTIONS
        if unknown:
            raise ValidationError(f"unknown task options {sorted(unknown)}; choose from {sorted(TASK_OPTIONS)}")
        if not callable(func):
            raise ValidationError(f"@task decorates functions, not {type(func).__name__}")
        entry = RegisteredTask(name or func.__name__, func, dict(options))
        Task(func=func, **options)  # validates the options now, not when the API first queues it
        with self._lock:
            self._tasks[entry.name] = entry
        return entry

    def get(self, name: str) -> RegisteredTask:
        """The registration named ``name``."""
        with self._lock:
            entry = self._tasks.get(name)
        if entry is None:
            raise NotFoundError(f"no registered task named {name!r}: decorate it with @unified.task")
        return entry

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        with self._lock:
            return sorted(self._tasks)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._tasks


REGISTRY = TaskRegistry()


@overload
def task(func: F, /) -> F: ...
@overload
def task(*, name: str | None = None, **options: Any) -> Callable[[F], F]: ...
def task(func: Callable[..., Any] | None = None, /, *, name: str | None = None, **options: Any) -> Any:
    """Register a module-level function as a task the REST API may queue: ``@task`` or ``@task(name=..., ...)``.

    ``options`` are Task options (``timeout``, ``max_retries``, ``retry_delay_seconds``, ``priority``, ...).
    The function is returned unchanged, so it still runs and imports as before.
    """

    def register(fn: F) -> F:
        REGISTRY.add(fn, name, **options)
        return fn

    return register(func) if func is not None else register
