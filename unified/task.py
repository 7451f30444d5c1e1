"""The task spec, its states and their allowed transitions, its retry policy, and the context a running task sees.

A :class:`Task` is a plain description (what to run, how often to retry, how long to wait); running it is the
executor's job (``Task.run``) or the engine's (``TaskManager.queue_task``).
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import math
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from unified.errors import ImportPathError, InvalidTransitionError, ValidationError
from unified.logger import task_logger
from unified.utils import backoff_delay, callable_identity, import_path_of, resolve_import_path

_CANCEL_LOCK = threading.Lock()  # makes each Task's cancel event once, whichever thread asks first


class TaskState(enum.StrEnum):
    """Where a task instance is in its life."""

    PENDING = "pending"  # waiting for its dependencies
    QUEUED = "queued"  # ready, waiting for a worker
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    RETRYING = "retrying"  # failed, waiting for its backoff delay; holds no worker
    SKIPPED = "skipped"  # an upstream task ended badly

    @property
    def finished(self) -> bool:
        """True for the states a task never leaves on its own."""
        return self in FINISHED_STATES


FINISHED_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.TIMEOUT, TaskState.CANCELED, TaskState.SKIPPED}
)
BAD_STATES = frozenset({TaskState.FAILURE, TaskState.TIMEOUT, TaskState.CANCELED, TaskState.SKIPPED})
RETRYABLE_STATES = frozenset({TaskState.FAILURE, TaskState.TIMEOUT, TaskState.CANCELED, TaskState.SKIPPED})
RUN_STATES = ("running", "success", "failure", "canceled")  # a run's life: running until its last task settles it


def check_state_filter(state: str | None, states: Iterable[str], what: str) -> None:
    """A ValidationError unless ``state`` (a list filter) is None or one of ``states`` (``what``: "task", "run")."""
    if state is not None and state not in states:
        raise ValidationError(f"{state!r} is not a {what} state: filter by one of {', '.join(states)}")


_S = TaskState
ALLOWED_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _S.PENDING: frozenset({_S.QUEUED, _S.CANCELED, _S.SKIPPED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.CANCELED, _S.SKIPPED}),
    _S.RUNNING: frozenset({_S.SUCCESS, _S.FAILURE, _S.TIMEOUT, _S.CANCELED, _S.RETRYING, _S.QUEUED}),
    _S.RETRYING: frozenset({_S.RUNNING, _S.QUEUED, _S.CANCELED}),
    # a finished task can only be retried by hand: it starts over as pending or queued
    _S.SUCCESS: frozenset(),
    _S.FAILURE: frozenset({_S.PENDING, _S.QUEUED}),
    _S.TIMEOUT: frozenset({_S.PENDING, _S.QUEUED}),
    _S.CANCELED: frozenset({_S.PENDING, _S.QUEUED}),
    _S.SKIPPED: frozenset({_S.PENDING, _S.QUEUED}),
}
# the allowed (current, new) pairs by value: a move checked in passing (once per attempt) without a call; a StrEnum
# member hashes and compares as its value
ALLOWED_MOVES = frozenset((now.value, new.value) for now, allowed in ALLOWED_TRANSITIONS.items() for new in allowed)


_STATES = {state.value: state for state in TaskState}  # a member or its value -> the member, without Enum's lookup


def check_transition(current: TaskState | str, new: TaskState | str) -> TaskState:
    """Return ``new`` as a TaskState if ``current -> new`` is allowed, else raise InvalidTransitionError."""
    try:
        current, new = _STATES[current], _STATES[new]
    except KeyError:  # not a state: TaskState says which value is wrong
        current, new = TaskState(current), TaskState(new)
    if new not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransitionError(
            f"a task cannot go from {current.value} to {new.value}; "
            f"from {current.value} it may go to {sorted(s.value for s in ALLOWED_TRANSITIONS[current]) or 'nothing'}"
        )
    return new


ISOLATIONS = ("thread", "process")
_NOT_ARGS = (str, bytes, bytearray, Mapping, Set)  # iterables whose items are no positional arguments


@functools.lru_cache(maxsize=256)
def _exception_class(path: str) -> type[BaseException]:
    return resolve_import_path(path)  # type: ignore[no-any-return]


def check_runnable(spec: dict[str, Any], func: Callable[..., Any] | None) -> None:
    """Raise ValidationError if the task of ``spec`` cannot run here: it has no command, import path nor ``func`` (the
    callable found for it in this process), or a ``retry_on`` class of it cannot be imported."""
    if func is None:
        _check_command(spec)
    for path in spec.get("retry_on", ()):
        _exception_class(path)


def _check_command(spec: dict[str, Any]) -> None:
    """A spec with no callable to run must be a shell command."""
    if spec.get("command") is None:
        raise ValidationError(
            f"task {spec.get('task_id')!r} runs a lambda or closure ({spec.get('func')}) that is not available "
            "in this process; define it at module level so it can be found by import path"
        )


def check_number(name: str, value: Any, kind: str = "0 or more", whole: bool = False) -> None:
    """A ValidationError unless ``value`` is a finite number (an int when ``whole``; never a bool) that is ``kind``:
    "0 or more", "positive" or "at least 1"."""
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        got = f"{type(value).__name__} {value!r}"
    elif (value > 0 if kind == "positive" else value >= (1 if kind == "at least 1" else 0)) and value != math.inf:
        return
    else:
        got = repr(value)
    number = "whole number" if whole else "finite number"
    wanted = f"a positive {number}" if kind == "positive" else f"a {number} of {kind}"
    raise ValidationError(f"{name} must be {wanted}, not {got}")


def check_dict(name: str, value: Any, keys: str = "names") -> None:
    """A ValidationError unless ``value`` is None or a dict (any mapping) whose keys are strings naming ``keys``."""
    if value is not None and not (isinstance(value, Mapping) and all(isinstance(key, str) for key in value)):
        got = "one with a key that is not a string" if isinstance(value, Mapping) else type(value).__name__
        raise ValidationError(f"{name} must be a dict of {keys} (strings) to values, not {got}")


def check_task(task: Any, call: str) -> None:
    """A ValidationError unless ``task`` is a :class:`Task` (``call`` names the method it was given to)."""
    if not isinstance(task, Task):
        raise ValidationError(f"{call} takes a Task, not {type(task).__name__}: wrap it in Task(func=...)")


def check_sla(sla_seconds: float | None) -> float | None:
    """``sla_seconds`` if it is None or a positive number; a ValidationError otherwise."""
    if sla_seconds is not None:
        check_number("sla_seconds", sla_seconds, "positive")
    return None if sla_seconds is None else float(sla_seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed attempt is tried again."""

    max_retries: int = 0
    retry_delay_seconds: float = 0.0
    backoff_factor: float = 2.0
    max_retry_delay_seconds: float | None = None
    jitter: bool = False

    def __post_init__(self) -> None:
        check_number("max_retries", self.max_retries, whole=True)
        check_number("retry_delay_seconds", self.retry_delay_seconds)
        check_number("backoff_factor", self.backoff_factor, "at least 1")
        if self.max_retry_delay_seconds is not None:
            check_number("max_retry_delay_seconds", self.max_retry_delay_seconds)

    def delay(self, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1 for the first retry)."""
        return backoff_delay(
            retry_number,
            self.retry_delay_seconds,
            self.backoff_factor,
            self.max_retry_delay_seconds,
            self.jitter,
        )

    def allows_retry(self, attempts_made: int) -> bool:
        """True if another attempt may follow ``attempts_made`` attempts."""
        return attempts_made <= self.max_retries

    def delay_after(self, attempts_made: int) -> float | None:
        """Seconds before the attempt after ``attempts_made`` attempts (``delay`` of the retry it is), or None when
        none may follow: the two questions a failure's plan asks, in one call."""
        if attempts_made > self.max_retries:
            return None
        if not self.retry_delay_seconds and attempts_made >= 1:  # backoff_delay's own answer, without its call
            return 0.0
        return self.delay(attempts_made)

    @staticmethod
    def of_spec(spec: dict[str, Any]) -> RetryPolicy:
        """The policy a task spec (:meth:`Task.spec`) names; one shared instance per distinct policy (it is frozen),
        as every attempt's Task and every failure's plan asks for one: building it costs four times the lookup."""
        return _policy(
            spec.get("max_retries", 0),
            spec.get("retry_delay_seconds", 0),
            spec.get("backoff_factor", 2.0),
            spec.get("max_retry_delay_seconds"),
            spec.get("jitter", False),
        )


# typed: 1, 1.0 and True are different options (True is refused), and each is checked once
_policy = functools.lru_cache(maxsize=256, typed=True)(RetryPolicy)


class CancelFlag:
    """An attempt's cancel signal with ``threading.Event``'s methods, costing a flag until something waits on it.

    Most attempts are never canceled nor waited on, and an Event (a Condition and its lock) per claimed attempt was
    4-6% of a runner's CPU; the Event is made on the first ``wait``.
    """

    # class defaults, not slots set by an __init__: one is made per claimed attempt, and so without a Python call
    _flag = False
    _event: threading.Event | None = None

    def is_set(self) -> bool:
        """True once set (and not cleared since)."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake whoever waits."""
        self._flag = True  # before reading _event: a waiter publishes its event before reading the flag
        if (event := self._event) is not None:
            event.set()

    def clear(self) -> None:
        """Unset the flag."""
        self._flag = False
        if (event := self._event) is not None:
            event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` seconds pass; True if set."""
        if self._flag:
            return True
        if self._event is None:
            with _CANCEL_LOCK:
                if self._event is None:
                    self._event = threading.Event()
        event = self._event
        if self._flag:  # set before the event existed: the setter found none to wake
            event.set()
        return event.wait(timeout)


CancelSignal = threading.Event | CancelFlag  # what TaskContext and the executor accept as a cancel signal


class TaskContext:
    """What a running task sees when its function declares a ``ctx`` parameter."""

    def __init__(
        self,
        task_id: str,
        run_id: str | None = None,
        attempt: int = 1,
        params: dict[str, Any] | None = None,
        upstream: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        add_task: Callable[[Task], str] | None = None,
        cancel_event: CancelSignal | None = None,
        logger: logging.Logger | None = None,
        name: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.run_id = run_id
        self.attempt = attempt
        self.params = params or {}
        self.upstream = upstream or {}
        self.metadata = metadata if metadata is not None else {}
        self._logger = logger
        self._logger_name = name or task_id  # the task's name: one logger per kind of task, not per instance
        self._add_task = add_task
        self._cancel_event = cancel_event or threading.Event()

    @property
    def logger(self) -> logging.Logger:
        """The ``unified.task.<name>`` logger; its lines are captured into the attempt's log."""
        if self._logger is None:
            self._logger = task_logger(self._logger_name)
        return self._logger

    @property
    def cancelled(self) -> bool:
        """True once the task was canceled or timed out: cooperative code should stop."""
        return self._cancel_event.is_set()

    def add_task(self, task: Task) -> str:
        """Add ``task`` to the running workflow or task group; returns its task id."""
        check_task(task, "ctx.add_task")
        if self._add_task is None:
            raise ValidationError("this task runs on its own (Task.run); add_task needs a TaskManager or workflow")
        return self._add_task(task)


def context_parameter(func: Callable[..., Any]) -> tuple[str, int | None] | None:
    """The parameter for the TaskContext (``ctx`` or annotated ``TaskContext``): (name, position or None), or None."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    for i, p in enumerate(parameters):  # positional parameters come first; keyword-only ctx has no position
        if p.name == "ctx" or p.annotation in (TaskContext, "TaskContext"):
            return p.name, i if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) else None
    return None


def _registered(name: str) -> Callable[..., Any]:
    """The function registered under ``name`` with ``@unified.task``; an ImportPathError when there is none."""
    from unified.registration import REGISTRY  # registration builds Tasks: imported here, when a name is used

    if name not in REGISTRY:
        raise ImportPathError(
            f"{name!r} is neither an import path ('package.module:function') nor the name of a function "
            "registered with @unified.task"
        )
    return REGISTRY.get(name).func


class Task:
    """A unit of work: a Python callable, an import path ``"pkg.mod:function"`` or a shell command."""

    def __init__(
        self,
        task_id: str | None = None,
        func: Callable[..., Any] | str | None = None,
        command: str | list[str] | None = None,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        dependencies: Iterable[str] = (),
        timeout: float | None = None,
        max_retries: int = 0,
        retry_delay_seconds: float = 0,
        backoff_factor: float = 2.0,
        max_retry_delay_seconds: float | None = None,
        jitter: bool = False,
        retry_on: Iterable[type[BaseException]] | type[BaseException] = (Exception,),
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        isolation: str = "thread",
        queue: str = "default",
        sla_seconds: float | None = None,
    ) -> None:
        if (func is None) == (command is None):
            raise ValidationError("give a task exactly one of func= (a callable or import path) or command=")
        if timeout is not None:
            check_number("timeout", timeout, "positive")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValidationError(f"priority must be a whole number (higher runs first), not {priority!r}")
        if not isinstance(queue, str) or not queue.strip():
            raise ValidationError(f"queue must be a non-empty name, not {queue!r}")
        if isolation not in ISOLATIONS:
            raise ValidationError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
        if task_id is not None and (not isinstance(task_id, str) or not task_id.strip()):
            raise ValidationError("task_id must be a non-empty string (or None to generate one)")
        if not isinstance(args, tuple | list) and (isinstance(args, _NOT_ARGS) or not isinstance(args, Iterable)):
            raise ValidationError(f"args must be a list or tuple, not {type(args).__name__}: for one, args=(x,)")
        check_dict("kwargs", kwargs, "argument names")
        check_dict("metadata", metadata)
        if isinstance(func, str) and ":" not in func:
            func = _registered(func)
        if isinstance(func, str):
            target = resolve_import_path(func)
            if not callable(target):
                raise ValidationError(f"{func!r} names a {type(target).__name__}, not a function")
            func_path: str | None = func
        elif func is not None:
            if not callable(func):
                raise ValidationError(f"func must be callable or an import path, not {type(func).__name__}")
            func_path = import_path_of(func)
        else:
            func_path = None
        if isolation == "process" and func is not None and func_path is None:
            where = (
                "a module of its own, not in the script being run (__main__), which a child process does not import"
                if getattr(func, "__module__", None) == "__main__"
                else "module level and pass it (or its import path 'pkg.mod:function'), not a lambda or closure"
            )
            raise ValidationError(
                f"isolation='process' needs a function another process can import: define it in {where}"
            )
        retry_on = tuple(retry_on) if isinstance(retry_on, Iterable) else (retry_on,)
        for exc_type in retry_on:
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise ValidationError(f"retry_on takes exception classes, not {exc_type!r}")
        try:  # one shared, checked policy per distinct options, as for specs (see RetryPolicy.of_spec)
            retry = _policy(max_retries, retry_delay_seconds, backoff_factor, max_retry_delay_seconds, jitter)
        except TypeError:  # an unhashable option: the constructor's checks name it
            retry = RetryPolicy(max_retries, retry_delay_seconds, backoff_factor, max_retry_delay_seconds, jitter)
        dependencies = (dependencies,) if isinstance(dependencies, str) else dependencies
        self._fill(task_id, func, func_path, command, args, kwargs, name, dependencies, timeout, retry,
                   retry_on, priority, metadata, isolation, queue, check_sla(sla_seconds))  # fmt: skip

    def _fill(
        self,
        task_id: str | None,
        func: Callable[..., Any] | str | None,
        func_path: str | None,
        command: str | list[str] | None,
        args: Iterable[Any],
        kwargs: dict[str, Any] | None,
        name: str | None,
        dependencies: Iterable[str],
        timeout: float | None,
        retry: RetryPolicy,
        retry_on: tuple[type[BaseException], ...],
        priority: int,
        metadata: dict[str, Any] | None,
        isolation: str,
        queue: str,
        sla_seconds: float | None,
    ) -> None:
        """Set every attribute from values already checked (by ``__init__``, or when the spec was first stored)."""
        self.task_id = task_id
        self.func = func
        self.func_path = func_path
        self.command = command
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.name = name or task_id or self._default_name()
        self.dependencies = tuple(dependencies)
        self.timeout = timeout
        self.retry = retry
        self.retry_on = retry_on
        self.priority = priority
        self.metadata = dict(metadata or {})
        self.isolation = isolation
        self.queue = queue
        self.sla_seconds = sla_seconds  # an sla_missed alert if not finished this long after queueing
        self._cancel: threading.Event | None = None  # made on first use: most Tasks are rebuilt and never run()

    @property
    def _cancel_event(self) -> threading.Event:
        if self._cancel is None:
            with _CANCEL_LOCK:
                if self._cancel is None:
                    self._cancel = threading.Event()
        return self._cancel

    @_cancel_event.setter
    def _cancel_event(self, event: threading.Event) -> None:
        self._cancel = event

    # the seed and the issue name these as plain attributes
    @property
    def max_retries(self) -> int:
        """How many retries follow a failed first attempt."""
        return self.retry.max_retries

    @property
    def retry_delay_seconds(self) -> float:
        """Delay before the first retry."""
        return self.retry.retry_delay_seconds

    def _default_name(self) -> str:
        if self.command is not None:
            text = self.command if isinstance(self.command, str) else " ".join(self.command)
            return text[:60]
        if isinstance(self.func, str):
            return self.func.rpartition(":")[2]
        return getattr(self.func, "__name__", "task")

    def resolve(self) -> Callable[..., Any] | None:
        """The callable to run (None for a shell command)."""
        if isinstance(self.func, str):
            return resolve_import_path(self.func)
        return self.func

    def identity(self) -> str:
        """What this task runs, as text: an import path, an in-process code hash, or ``shell:`` + command."""
        if self.command is not None:
            return f"shell:{self.command}"
        if self.func_path:
            return self.func_path
        return callable_identity(self.func)  # type: ignore[arg-type]

    def spec(self) -> dict[str, Any]:
        """The JSON-ready description of this task, as stored in workflow versions and task records."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            "func": self.identity() if self.command is None else None,
            "command": self.command,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "dependencies": list(self.dependencies),
            "timeout": self.timeout,
            "max_retries": self.retry.max_retries,
            "retry_delay_seconds": self.retry.retry_delay_seconds,
            "backoff_factor": self.retry.backoff_factor,
            "max_retry_delay_seconds": self.retry.max_retry_delay_seconds,
            "jitter": self.retry.jitter,
            "retry_on": [f"{t.__module__}:{t.__qualname__}" for t in self.retry_on],
            "priority": self.priority,
            "metadata": self.metadata,
            "isolation": self.isolation,
            "queue": self.queue,
            "sla_seconds": self.sla_seconds,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any], func: Callable[..., Any] | None = None) -> Task:
        """Rebuild a Task from :meth:`spec`; ``func`` stands in for an in-process callable.

        The spec was made by :meth:`spec` of a Task that passed ``__init__``'s checks, so they are not run again
        (a claimed task is rebuilt once per attempt); only the callable and the exception classes are looked up.
        """
        identity = spec.get("func")
        path = identity if identity and not identity.startswith("inproc:") else None
        target: Callable[..., Any] | str | None = func if func is not None else path
        if target is None:
            _check_command(spec)
        retry = RetryPolicy.of_spec(spec)
        retry_on = tuple(map(_exception_class, spec.get("retry_on", ["builtins:Exception"])))
        task = cls.__new__(cls)
        task._fill(
            spec.get("task_id"),
            target,
            path if target is not None else None,
            spec.get("command") if target is None else None,
            spec.get("args", ()),
            spec.get("kwargs"),
            spec.get("name"),
            spec.get("dependencies", ()),
            spec.get("timeout"),
            retry,
            retry_on,
            spec.get("priority", 0),
            spec.get("metadata"),
            spec.get("isolation", "thread"),
            spec.get("queue", "default"),
            spec.get("sla_seconds"),
        )
        return task

    def snapshot(self) -> Task:
        """A copy whose attributes later assignments to this Task do not change (what it holds is shared)."""
        task = Task.__new__(Task)
        task.__dict__.update(self.__dict__)
        task._cancel = None
        return task

    def should_retry(self, error: BaseException | None) -> bool:
        """True if ``error`` is one this task retries; None stands for a timeout, retried if ``retry_on`` takes
        TimeoutError (the default ``Exception`` does)."""
        return issubclass(TimeoutError, self.retry_on) if error is None else isinstance(error, self.retry_on)

    def run(self, *, params: dict[str, Any] | None = None) -> Any:
        """Run this task in the calling thread, with its retries and timeout; return its result or raise."""
        from unified.executor import run_task_inline  # deferred: the executor is one layer up (see docs)

        return run_task_inline(self, self._cancel_event, params=params)

    def cancel(self) -> None:
        """Cancel a run of this task started with :meth:`run` (cooperatively for threads, by kill for processes)."""
        self._cancel_event.set()

    def __repr__(self) -> str:
        return f"Task(task_id={self.task_id!r}, name={self.name!r})"


class _CallableModule(types.ModuleType):
    """This module's type: calling ``unified.task`` registers a function, as ``@unified.task`` or with options."""

    def __call__(self, func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """``@unified.task`` or ``@unified.task(name=..., max_retries=...)``: see :func:`unified.registration.task`."""
        from unified.registration import task  # same layer; deferred because registration imports this module

        return task(func, **options) if func is not None else task(**options)


sys.modules[__name__].__class__ = _CallableModule
