"""Task code the service may run, and the workflows folder it loads at start and on reload.

``@task`` registers a module-level function under a name with default options (retries, timeout, ...); the
REST API queues only registered names and import paths of modules loaded from the workflows folder, so a
request can never make the server import or run arbitrary code.

A workflows folder holds Python files that define module-level :class:`Workflow` objects. Each file is imported
on its own: one that fails to import is reported with its traceback and the others still load.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from unified.errors import ImportPathError, NotFoundError, UnifiedError, ValidationError
from unified.task import Task
from unified.workflow.workflow import Workflow, WorkflowManager

log = logging.getLogger("unified.registry")

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
            raise NotFoundError(f"no registered task named {name!r}: decorate it with @unified.registry.task")
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


@dataclass
class LoadError:
    """A workflows-folder file that failed to import, with its traceback."""

    file: str
    error: str
    traceback: str


@dataclass
class LoadReport:
    """What one load of the workflows folder found."""

    folder: str | None
    modules: list[str] = field(default_factory=list)
    workflows: list[Workflow] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)


class WorkflowsFolder:
    """Imports every ``*.py`` file of a folder (not recursively, skipping ``_*.py``) and collects its workflows.

    A folder that is a package (has ``__init__.py``) is imported as that package (``examples.etl``), with its
    parent on ``sys.path``; otherwise each file is a top-level module and the folder is on ``sys.path``.
    """

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder).resolve() if folder else None
        self.report = LoadReport(str(self.folder) if self.folder else None)
        self._lock = threading.Lock()

    def _module_names(self) -> list[tuple[str, Path]]:
        assert self.folder is not None
        package = self.folder.name if (self.folder / "__init__.py").exists() else None
        files = sorted(p for p in self.folder.glob("*.py") if not p.name.startswith("_"))
        return [(f"{package}.{p.stem}" if package else p.stem, p) for p in files]

    def load(self) -> LoadReport:
        """(Re)import the folder's files; returns and keeps the report. Never raises for a broken file."""
        with self._lock:
            report = LoadReport(str(self.folder) if self.folder else None)
            if self.folder is None:
                self.report = report
                return report
            if not self.folder.is_dir():
                report.errors.append(LoadError(str(self.folder), "the workflows folder does not exist", ""))
                self.report = report
                return report
            root = str(self.folder.parent if (self.folder / "__init__.py").exists() else self.folder)
            if root not in sys.path:
                sys.path.insert(0, root)
            importlib.invalidate_caches()
            seen: dict[str, Workflow] = {}
            names = self._module_names()
            for module_name, _ in names:  # forget the last pass, so files that import each other agree
                sys.modules.pop(module_name, None)
            for module_name, path in names:
                try:
                    module = importlib.import_module(module_name)
                except BaseException as exc:  # a user's file may raise anything, even SystemExit
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    text = "".join(traceback.format_exception(exc))
                    log.error("workflows folder: %s failed to import; the server goes on without it\n%s", path, text)
                    report.errors.append(LoadError(str(path), f"{type(exc).__name__}: {exc}", text))
                    continue
                report.modules.append(module_name)
                for value in vars(module).values():
                    if isinstance(value, Workflow) and seen.get(value.name) is not value:
                        if value.name in seen:
                            message = f"workflow name {value.name!r} is defined twice; the first definition is kept"
                            report.errors.append(LoadError(str(path), message, ""))
                            continue
                        seen[value.name] = value
                        report.workflows.append(value)
            self.report = report
            return report

    def owns(self, import_path: str) -> bool:
        """True if ``import_path`` names something in a module loaded from the folder."""
        module_name = import_path.partition(":")[0]
        return module_name in self.report.modules

    def resolve(self, name_or_path: str, registry: TaskRegistry = REGISTRY) -> RegisteredTask:
        """A registered name, or an import path into a module of the folder, as a RegisteredTask."""
        if name_or_path in registry:
            return registry.get(name_or_path)
        if ":" in name_or_path:
            if not self.owns(name_or_path):
                raise ImportPathError(
                    f"{name_or_path!r} is not in a module of the workflows folder: the API runs only tasks "
                    "registered with @task or defined in that folder"
                )
            module_name, _, attribute = name_or_path.partition(":")
            obj: Any = sys.modules[module_name]
            for part in attribute.split("."):
                obj = getattr(obj, part, None)
            if not callable(obj):
                raise ImportPathError(f"{name_or_path!r} does not name a function in the workflows folder")
            return RegisteredTask(attribute.rsplit(".", 1)[-1], obj)
        raise NotFoundError(
            f"no registered task named {name_or_path!r}: register it with @task, or give an import path "
            "'module:function' of a module in the workflows folder"
        )


def load_workflows(folder: WorkflowsFolder, manager: WorkflowManager) -> LoadReport:
    """Load the folder and register each workflow it defines; a workflow that cannot be stored is reported."""
    report = folder.load()
    stored = []
    for workflow in report.workflows:
        try:
            manager.register(workflow)
            stored.append(workflow)
        except UnifiedError as exc:
            log.error("workflows folder: workflow %r cannot be registered: %s", workflow.name, exc)
            report.errors.append(LoadError(report.folder or "", f"workflow {workflow.name!r}: {exc}", ""))
    report.workflows = stored
    return report
