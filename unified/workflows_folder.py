"""The workflows folder the server loads at start and on reload, and how the API resolves task names in it.

A workflows folder holds Python files that define module-level :class:`Workflow` objects. Each file is imported
on its own: one that fails to import is reported with its traceback and the others still load. On a reload the
engine forgets the functions it resolved from the folder's modules, so runs started afterwards use the new code.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from unified.errors import ImportPathError, NotFoundError, UnifiedError
from unified.registration import REGISTRY, RegisteredTask, TaskRegistry
from unified.workflow.workflow import Workflow, WorkflowManager

log = logging.getLogger("unified.workflows_folder")


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
    # every module imported from the folder's files, the helpers they import (``_*.py``, subfolders) included
    imported: dict[str, ModuleType] = field(default_factory=dict, repr=False)
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
        self._preexisting: dict[str, ModuleType] | None = None

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
            # forget the last pass, the helpers it imported from the folder too, so that every file is read again
            if self._preexisting is None:  # what the process had imported before the folder's first load
                self._preexisting = dict(sys.modules)
            for module_name in [*self.imported(), *(name for name, _ in names)]:
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
            report.imported = self.imported()
            self.report = report
            return report

    def imported(self) -> dict[str, ModuleType]:
        """The modules imported from files in the folder or below it since its first load: those its loads imported
        and the helpers a task imported later, not what the process had before (unified itself, or the packages of
        a virtual environment kept inside the folder)."""
        assert self.folder is not None
        inside = {}
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            earlier = (self._preexisting or {}).get(name)
            if module is not earlier and file and Path(file).resolve().is_relative_to(self.folder):
                inside[name] = module
        return inside

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
            report = self.report  # one load's modules, whole, while a reload runs
            module_name, _, attribute = name_or_path.partition(":")
            obj: Any = report.imported.get(module_name)
            for part in attribute.split("."):
                obj = None if part.startswith("_") else getattr(obj, part, None)
                if isinstance(obj, ModuleType):  # a module the file imported (``os``, ``random``): no way through it
                    obj = None
            if not _defined_in(obj, report.imported):
                raise ImportPathError(
                    f"{name_or_path!r} does not name a function defined in the workflows folder (functions it "
                    "imports from elsewhere are not run by the API)"
                )
            return RegisteredTask(attribute.rsplit(".", 1)[-1], obj)
        raise NotFoundError(
            f"no registered task named {name_or_path!r}: register it with @task, or give an import path "
            "'module:function' of a module in the workflows folder"
        )


def _defined_in(obj: Any, modules: dict[str, ModuleType]) -> bool:
    """Whether ``obj`` is a function (or a method, or a function wrapped by a decorator such as ``functools.cache``)
    whose code is in one of ``modules``."""
    func = inspect.unwrap(getattr(obj, "__func__", obj))
    return inspect.isfunction(func) and func.__module__ in modules


def load_workflows(folder: WorkflowsFolder, manager: WorkflowManager) -> LoadReport:
    """Load the folder and register each workflow it defines; a workflow that cannot be stored is reported.

    The engine forgets the functions it resolved from the folder's modules (before and after this load), so tasks
    run after a reload use the reloaded code.
    """
    previous = folder.imported() if folder.folder is not None and folder.report.folder else {}
    report = folder.load()
    manager.engine.functions.forget({*previous, *report.imported})
    return register_workflows(report, manager)


def register_workflows(report: LoadReport, manager: WorkflowManager) -> LoadReport:
    """Register each workflow a folder's load found; one that cannot be stored is reported, not raised."""
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
