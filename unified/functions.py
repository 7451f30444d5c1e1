"""Which Python callables this process can run: in-process functions by a per-object ref, others by import path."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterable
from typing import Any

from unified.task import Task, check_runnable
from unified.utils import resolve_import_path

MAX_KEPT = 10_000  # Tasks kept for their next attempt (see FunctionRegistry.rebuild); all dropped beyond it


class FunctionRegistry:
    """Callables this process can run, by identity; import paths resolve on first use and are cached."""

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        # in-process functions of single tasks (see register), by ref: the ids of those tasks yet to succeed (and
        # the id() of a spec registered whose task is not stored yet)
        self._users: dict[str, set[str | int]] = {}
        self._kept_for_good: set[str] = set()  # refs of workflows' and schedules' functions: they may run again
        self._kept: dict[str, tuple[dict[str, Any], Task]] = {}  # task id -> (the spec object, its Task)
        # names this registry in the tasks whose function only it holds (TaskRecord.holder): host, process, registry
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def register(self, task: Task, for_good: bool = False) -> dict[str, Any]:
        """Remember ``task``'s callable and return its spec, which names it (``ref``) if it has no import path.

        ``for_good``: the task is a workflow's or a schedule's, which may run again. Else it is one task's own (queued
        on its own, a run's or a parent's): its in-process function is let go once each task holding it succeeded
        (see :meth:`hold`), with what it captured (closures over large frames queued in a loop were kept until
        shutdown)."""
        spec = task.spec()
        if task.func is not None and task.func_path is None and not isinstance(task.func, str):
            # lambdas with equal code can differ in defaults or closures: each object gets its own ref
            ref = spec["ref"] = f"{spec['func']}@{id(task.func):x}"
            self._functions[ref] = task.func
            if for_good:
                self._kept_for_good.add(ref)
            else:  # held for this spec until hold() names its task: a release meanwhile must not let go of it
                self._users.setdefault(ref, set()).add(id(spec))
        return spec

    def hold(self, task_id: str, spec: dict[str, Any]) -> None:
        """The task ``task_id`` runs the in-process function of ``spec``: kept until :meth:`release` of that task."""
        ref = spec.get("ref")
        if ref in self._functions and ref not in self._kept_for_good:
            users = self._users.setdefault(ref, set())  # type: ignore[arg-type]
            users.add(task_id)
            users.discard(id(spec))  # type: ignore[arg-type]

    def release(self, task_id: str, spec: dict[str, Any]) -> None:
        """The task ``task_id`` succeeded (a success never runs again): its in-process function is let go once no
        other task holds it. Releasing twice is harmless."""
        ref = spec.get("ref")
        users = self._users.get(ref) if ref else None
        if users is not None:
            users.discard(task_id)
            if not users:
                del self._users[ref]  # type: ignore[arg-type]
                if ref not in self._kept_for_good:  # queued on its own first, then made a workflow's
                    del self._functions[ref]  # type: ignore[arg-type]

    @property
    def claiming_holder(self) -> str | None:
        """What a claim passes as its holder: this registry's name while it holds any in-process function, else None
        (no task can be held by it then, and the store claims with one index walk instead of two). Functions found by
        import path, cached in ``_functions`` too, hold no task: every register by ref lands in ``_users`` or
        ``_kept_for_good``, and a ref leaves ``_functions`` only with its last user."""
        return self.holder if self._users or self._kept_for_good else None

    def holder_of(self, spec: dict[str, Any]) -> str | None:
        """This registry's name if the task of ``spec`` runs a function only it holds (registered here by ref),
        else None: any engine can run it."""
        return self.holder if spec.get("ref") in self._functions else None

    def rebuild(self, spec: dict[str, Any], keep_as: str | None = None) -> Task:
        """The Task of a stored spec, with its callable found here or by import path.

        With ``keep_as`` (a task's id), the Task of a spec that allows retries is kept, and the next attempt's
        rebuild of the very same spec object returns it again (a store that keeps objects hands out the one it
        holds): a task failing twice is built once, not three times. Kept until :meth:`drop` or :meth:`forget`.
        """
        if keep_as is not None and (kept := self._kept.get(keep_as)) is not None and kept[0] is spec:
            return kept[1]
        task = Task.from_spec(spec, func=self._callable(spec))
        if keep_as is not None and task.retry.max_retries:
            self.keep(keep_as, spec, task)
        return task

    def keep(self, task_id: str, spec: dict[str, Any], task: Task) -> None:
        """Have :meth:`rebuild` of this very ``spec`` object for ``task_id`` return ``task`` (on a store that keeps
        objects, the Task as submitted) instead of building one. Kept until :meth:`drop` or :meth:`forget`."""
        if len(self._kept) >= MAX_KEPT:  # a bound, not a cache: past it drop them all (the rest are built again)
            self._kept.clear()
        self._kept[task_id] = (spec, task)

    def drop(self, task_id: str) -> None:
        """Forget the Task kept for ``task_id``'s next attempt (it finished, or is no longer run here)."""
        self._kept.pop(task_id, None)

    def lost(self, spec: dict[str, Any]) -> bool:
        """Whether ``spec`` runs an in-process function that is not here (another process registered it)."""
        return (spec.get("func") or "").startswith("inproc:") and spec.get("ref") not in self._functions

    def adopt(self, specs: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
        """Give each of ``specs`` whose function is lost here the ``ref`` of the task of the same id in ``current``
        that runs the same function (same identity) from here: a workflow registered again by a new process hashes as
        its stored version, whose refs were the old process's."""
        mine = {s["task_id"]: s for s in current if s.get("ref") in self._functions}
        for spec in specs:
            if self.lost(spec) and (same := mine.get(spec["task_id"])) is not None and same["func"] == spec["func"]:
                spec["ref"] = same["ref"]

    def check(self, spec: dict[str, Any]) -> None:
        """Raise ValidationError if the task of ``spec`` can run nowhere: a lambda or closure is only in the process
        that defined it. An import path is not resolved here: the workers that run the task need the code, a process
        that only starts runs (a scheduler, an API server without workers) does not."""
        if self.lost(spec):
            check_runnable(spec, None)

    def _callable(self, spec: dict[str, Any]) -> Callable[..., Any] | None:
        identity = spec.get("func")
        func = self._functions.get(spec.get("ref") or identity) if identity else None
        if func is None and identity and not identity.startswith("inproc:"):
            func = resolve_import_path(identity)
            self._functions[identity] = func
        return func

    def forget(self, modules: Iterable[str]) -> int:
        """Drop cached import paths into ``modules`` (e.g. reloaded ones) so they resolve afresh; returns how many."""
        self._kept.clear()  # their callables may be the reloaded modules' old ones
        names = set(modules)
        stale = [key for key in list(self._functions) if key.partition(":")[0] in names]
        for key in stale:
            self._functions.pop(key, None)
        return len(stale)
