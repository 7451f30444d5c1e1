"""How one attempt of a task runs: in the calling thread, in a thread with a timeout, in a child process, or as a
shell command; and ``Task.run()``, which repeats attempts with the task's retry policy.

This module (with :mod:`unified.executor_child` and :mod:`unified.lifeline`) is the only place that starts threads
or processes for user code. A thread cannot be killed: on timeout it is told to stop (``ctx.cancelled``) and
abandoned. Child processes run in their own session, so a timeout, a cancel or the worker's end kills their whole
process group.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unified.errors import SerializationError, TaskFailedError, ValidationError
from unified.logger import LogLine, capture, current_buffer, install_capture
from unified.task import CancelSignal, Task, TaskContext, context_parameter
from unified.tracebacks import message_of, traceback_text
from unified.utils import Clock, SystemClock, import_path_of, readable_text, split_lines, to_json

POLL_SECONDS = 0.02  # how often waits look at the cancel event: cancel is seen within ~20 ms
LIFELINE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lifeline.py")
EXIT_GRACE_SECONDS = 0.2  # how long pipes may stay open after the main process exited (background children)


@dataclass(slots=True)
class AttemptOutcome:
    """What one attempt ended with: its state, result or error, and the log lines it produced."""

    state: str  # "success" | "failure" | "timeout" | "canceled"
    result: Any = None
    error: dict[str, Any] | None = None
    # whether the task's ``retry_on`` admits the exception of a failure (decided here, so the exception is not kept:
    # its traceback holds the frames that hold this outcome, a cycle per failed attempt left to the garbage collector);
    # True for other outcomes and for failures without an exception in this process (a child process's)
    retryable: bool = True
    logs: list[LogLine] = field(default_factory=list)


# --- calling a function ---------------------------------------------------------------------------------------

# callable's id -> (weak ref, slot): a WeakKeyDictionary's lookup is Python code; an entry leaves with its callable
_context_slots: dict[int, tuple[weakref.ref[Any], tuple[str, int | None] | None]] = {}


def _context_slot(func: Callable[..., Any]) -> tuple[str, int | None] | None:
    """``context_parameter(func)``, cached: inspecting a signature costs far more than the fast path may."""
    bound = isinstance(func, types.MethodType)  # a new object on every access: cached by its function
    key = func.__func__ if bound else func
    known = _context_slots.get(key_id := id(key))
    if known is not None and known[0]() is key:
        slot = known[1]
    else:
        slot = context_parameter(key)
        with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
            _context_slots[key_id] = (weakref.ref(key, lambda _, k=key_id: _context_slots.pop(k, None)), slot)
    if bound and slot is not None and slot[1] is not None:  # the method's first parameter is bound already
        return (slot[0], slot[1] - 1) if slot[1] else None
    return slot


def call_with_context(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], ctx: TaskContext) -> Any:
    """Call ``func(*args, **kwargs)``, passing ``ctx`` to the parameter that asks for it where it is declared (``args``
    fill the positional parameters around it); run coroutines to the end."""
    # a plain function's cached slot read here: no call of _context_slot per attempt
    known = None if isinstance(func, types.MethodType) else _context_slots.get(id(func))
    slot = known[1] if known is not None and known[0]() is func else _context_slot(func)
    if slot is not None:
        name, position = slot
        if position is not None and len(args) >= position:
            args = (*args[:position], ctx, *args[position:])
            kwargs = {k: v for k, v in kwargs.items() if k != name} if name in kwargs else kwargs
        else:  # keyword-only, or after parameters the args leave to kwargs
            kwargs = {**kwargs, name: ctx}
    result = func(*args, **kwargs)
    # async def functions and wrappers that return a coroutine (inspect.iscoroutine, without its call per attempt)
    if isinstance(result, types.CoroutineType):
        result = _run_coroutine(result)
    return result


def _run_coroutine(coro: Any) -> Any:
    import asyncio  # here: a third of `import unified.task_manager`, and only async tasks need it

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # this thread already runs a loop (a notebook): asyncio.run refuses, so run it on a thread of its own
    box: dict[str, Any] = {}
    buffer = current_buffer()

    def target() -> None:
        with capture(buffer if buffer is not None else []):
            try:
                box["result"] = asyncio.run(coro)
            except BaseException as exc:
                box["error"] = exc

    thread = threading.Thread(target=target, name="unified-async", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


_OWN_FILES = frozenset({__file__, __file__.replace("executor.py", "executor_child.py")})


def error_info(exc: BaseException) -> dict[str, Any]:
    """The error dict of an exception: type name, message and traceback text (without the executor's frames)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    message = message_of(exc)
    return {"type": type(exc).__name__, "message": message, "traceback": traceback_text(exc, tb, message)}


def _where(thread: threading.Thread) -> str:
    """Where an abandoned thread is stuck, as stack text starting at the task's own code."""
    frame = _current_frames().get(thread.ident or -1)
    if frame is None:
        return ""
    stack = traceback.extract_stack(frame)
    own = [i for i, entry in enumerate(stack) if entry.filename in _OWN_FILES]
    stack = stack[own[-1] + 1 :] if own else stack
    return "the thread was still running here:\n" + "".join(traceback.format_list(stack))


def _current_frames() -> dict[int, types.FrameType]:
    """``sys._current_frames()`` with the garbage collector paused. CPython 3.11 builds the frames while it holds
    the lock of the thread list, and a collection started by that allocation can free a ``threading.local``, whose
    clean-up takes the same lock: the process hung for good (seen in the test suite; CPython gh-106883)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


class _LinkedEvent(threading.Event):
    """An attempt's own cancel flag that also reads as set once its parent (the task's cancel event) is set."""

    def __init__(self, parent: CancelSignal) -> None:
        super().__init__()
        self._parent = parent

    def is_set(self) -> bool:
        """True if this attempt or its parent was canceled."""
        return self._flag or self._parent.is_set()  # type: ignore[attr-defined]


# --- the executor -----------------------------------------------------------------------------------------------


class Executor:
    """Runs one attempt of a task."""

    def __init__(self, clock: Clock | None = None, allow_shell: bool = True) -> None:
        self.clock = clock or SystemClock()
        self.allow_shell = allow_shell  # False: a shell command's attempt fails without running (a server's setting)
        install_capture()

    def run_attempt(self, task: Task, ctx: TaskContext, func: Callable[..., Any] | None) -> AttemptOutcome:
        """Run ``task`` once with ``ctx``: ``func`` is its resolved callable, None for ``task.command``."""
        if ctx._cancel_event.is_set():
            return AttemptOutcome("canceled", error={"type": "Canceled", "message": "canceled before it started"})
        if func is None:
            if task.command is None:
                raise ValidationError(f"task {ctx.task_id!r} has neither a function nor a command to run")
            if not self.allow_shell:
                message = "shell tasks are off in this process: an admin can start the server with --allow-shell"
                return AttemptOutcome("failure", error={"type": "PermissionDeniedError", "message": message},
                                      retryable=False)  # fmt: skip
            return self._run_command(task, ctx)
        if task.isolation == "process":
            return self._run_process(task, ctx)
        if task.timeout is None:
            return self._run_inline(task, ctx, func)
        return self._run_thread(task, ctx, func)

    @staticmethod
    def runs_inline(task: Task, func: Callable[..., Any] | None) -> bool:
        """Whether :meth:`run_attempt` calls ``func`` in the calling thread, which a cancel then cannot free: with
        no timeout there is no thread of its own to abandon."""
        return func is not None and task.isolation != "process" and task.timeout is None

    # thread isolation

    def _run_inline(self, task: Task, ctx: TaskContext, func: Callable[..., Any]) -> AttemptOutcome:
        logs: list[LogLine] = []
        with capture(logs):
            try:
                result = call_with_context(func, task.args, task.kwargs, ctx)
            except BaseException as exc:  # asyncio.CancelledError, GeneratorExit...: a failure like any other
                if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                    raise  # Ctrl-C stops the caller (Task.run, run_until_idle); raised in a runner it is the task's
                return AttemptOutcome("failure", error=error_info(exc), retryable=task.should_retry(exc), logs=logs)
        if ctx._cancel_event.is_set():
            return self._canceled(logs)
        return AttemptOutcome("success", result=result, logs=logs)

    def _run_thread(self, task: Task, ctx: TaskContext, func: Callable[..., Any]) -> AttemptOutcome:
        logs: list[LogLine] = []
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            with capture(logs):
                try:
                    box["result"] = call_with_context(func, task.args, task.kwargs, ctx)
                except BaseException as exc:
                    box["error"] = exc
            done.set()

        thread = threading.Thread(target=target, name=f"unified-task-{ctx.task_id}", daemon=True)
        timeout = float(task.timeout)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        thread.start()
        while not done.wait(max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))):
            if ctx._cancel_event.is_set():
                return self._canceled(list(logs))  # a copy: the abandoned thread may keep logging
            if time.monotonic() >= deadline:
                ctx._cancel_event.set()
                return self._timed_out(task, list(logs), _where(thread))
        if "error" in box:
            exc = box.pop("error")
            return AttemptOutcome("failure", error=error_info(exc), retryable=task.should_retry(exc), logs=logs)
        if ctx._cancel_event.is_set():
            return self._canceled(logs)
        return AttemptOutcome("success", result=box["result"], logs=logs)

    def _timed_out(self, task: Task, logs: list[LogLine], detail: str = "") -> AttemptOutcome:
        message = f"attempt exceeded its {task.timeout:g} s timeout"
        logs.append((self.clock.now(), "ERROR", message))
        error = {"type": "TimeoutError", "message": message, "traceback": detail}
        return AttemptOutcome("timeout", error=error, retryable=task.should_retry(None), logs=logs)

    def _canceled(self, logs: list[LogLine]) -> AttemptOutcome:
        logs.append((self.clock.now(), "WARNING", "attempt canceled"))
        return AttemptOutcome("canceled", error={"type": "Canceled", "message": "the attempt was canceled"}, logs=logs)

    # process isolation

    def _run_process(self, task: Task, ctx: TaskContext) -> AttemptOutcome:
        if not task.func_path:
            error = ValidationError("isolation='process' needs a function given by import path 'pkg.mod:function'")
            return AttemptOutcome("failure", error=error_info(error))
        job = {
            "func": task.func_path,
            "args": list(task.args),
            "kwargs": task.kwargs,
            "task_id": ctx.task_id,
            "run_id": ctx.run_id,
            "attempt": ctx.attempt,
            "params": ctx.params,
            "upstream": ctx.upstream,
            "metadata": ctx.metadata,
            "log_level": logging.root.level,  # the child adopts it
            "retry_on": _retry_on_paths(task),  # the child tells whether its exception is one of them
        }
        try:
            payload = to_json(job, "the task's args, kwargs, params, upstream results or metadata")
        except SerializationError as exc:
            return AttemptOutcome("failure", error=error_info(exc))
        report_read, report_write = os.pipe()
        env = {**os.environ, "PYTHONPATH": _child_pythonpath(), "PYTHONUNBUFFERED": "1"}
        program = [sys.executable, "-m", "unified.executor_child", str(report_write)]
        try:
            proc, lifeline = _spawn(program, env, stdin=subprocess.PIPE, pass_fds=(report_write,))
        except OSError as exc:
            os.close(report_read)
            return AttemptOutcome("failure", error=error_info(exc))
        finally:
            os.close(report_write)
        messages: list[bytes] = []
        logs: list[LogLine] = []
        try:
            try:
                proc.stdin.write(payload.encode())  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass  # the child died at once; its stderr says why
            ended = self._supervise(proc, task.timeout, ctx, logs, extra={report_read: messages.append})
        finally:
            os.close(report_read)
            os.close(lifeline)
        report: dict[str, Any] = {}
        for line in messages:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not from the child's reporter (a grandchild that inherited the pipe)
            if "log" in message:
                created, level, text = message["log"]
                logs.append((created, level, readable_text(text)))
            else:
                report = message
        logs.sort(key=lambda line: line[0])
        if ended == "timeout":
            return self._timed_out(task, logs)
        if ended == "canceled":
            return self._canceled(logs)
        ctx.metadata.update(report.get("metadata") or {})
        if "result" in report:
            return AttemptOutcome("success", result=report["result"], logs=logs)
        if "error" in report:
            return AttemptOutcome("failure", error=report["error"], retryable=report.get("retryable", True), logs=logs)
        message = f"the task process exited with code {proc.returncode} before reporting a result{_last_err(logs)}"
        return AttemptOutcome("failure", error={"type": "ProcessDied", "message": message}, logs=logs)

    # shell commands

    def _run_command(self, task: Task, ctx: TaskContext) -> AttemptOutcome:
        command = task.command
        env = {
            **os.environ,
            "UNIFIED_TASK_ID": str(ctx.task_id),
            "UNIFIED_RUN_ID": str(ctx.run_id or ""),
            "UNIFIED_ATTEMPT": str(ctx.attempt),
        }
        if isinstance(command, str):
            program = ["/bin/sh", "-c", command]
        elif shutil.which(command[0], path=env.get("PATH")) is None:  # type: ignore[index]
            missing = FileNotFoundError(errno.ENOENT, "No executable program of that name on PATH", command[0])  # type: ignore[index]
            return AttemptOutcome("failure", error=error_info(missing))
        else:
            program = list(command)  # type: ignore[arg-type]
        try:
            proc, lifeline = _spawn(program, env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            return AttemptOutcome("failure", error=error_info(exc))
        logs: list[LogLine] = []
        stdout: list[str] = []
        try:
            ended = self._supervise(proc, task.timeout, ctx, logs, stdout=stdout)
        finally:
            os.close(lifeline)
        if ended == "timeout":
            return self._timed_out(task, logs)
        if ended == "canceled":
            return self._canceled(logs)
        if proc.returncode == 0:
            return AttemptOutcome("success", result="\n".join(stdout).strip(), logs=logs)
        code = proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        message = f"command {how}{_last_err(logs)}"
        return AttemptOutcome("failure", error={"type": "CommandFailed", "message": message}, logs=logs)

    # watching a child process

    def _supervise(
        self,
        proc: subprocess.Popen[bytes],
        timeout: float | None,
        ctx: TaskContext,
        logs: list[LogLine],
        stdout: list[str] | None = None,
        extra: dict[int, Callable[[bytes], None]] | None = None,
    ) -> str | None:
        """Read the child's pipes line by line until it ends; kill its group on timeout or cancel (returns why)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cancel = ctx._cancel_event
        clock = self.clock

        def out_line(raw: bytes) -> None:
            text = readable_text(raw.decode("utf-8", "replace").rstrip("\r"))
            logs.append((clock.now(), "INFO", text))
            if stdout is not None:
                stdout.append(text)

        def err_line(raw: bytes) -> None:
            logs.append((clock.now(), "WARNING", readable_text(raw.decode("utf-8", "replace").rstrip("\r"))))

        handlers: dict[int, Callable[[bytes], None]] = {
            proc.stdout.fileno(): out_line,  # type: ignore[union-attr]
            proc.stderr.fileno(): err_line,  # type: ignore[union-attr]
            **(extra or {}),
        }
        pending: dict[int, list[bytes]] = {fd: [] for fd in handlers}  # what each pipe sent since its last newline
        exited_at: float | None = None
        with selectors.DefaultSelector() as selector:
            for fd in handlers:
                selector.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                why = "canceled" if cancel.is_set() else "timeout" if deadline is not None and now >= deadline else None
                if why is not None:
                    _kill_group(proc)
                    if why == "timeout":
                        cancel.set()
                    return why
                if exited_at is None and _has_exited(proc.pid):
                    exited_at = now
                if not selector.get_map() and exited_at is not None:
                    break
                if exited_at is not None and now - exited_at > EXIT_GRACE_SECONDS:
                    break  # a background child still holds the pipes open; it is killed below
                wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - now))
                if not selector.get_map():
                    cancel.wait(wait)  # pipes closed, process still running
                    continue
                for key, _ in selector.select(wait):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fd)
                        if rest := b"".join(pending[key.fd]):
                            handlers[key.fd](rest)
                        continue
                    for line in split_lines(pending[key.fd], data):  # linear: a result is one line of many chunks
                        handlers[key.fd](line)
        _kill_group(proc)  # whatever the task left running in its group
        return None


def _retry_on_paths(task: Task) -> list[str] | None:
    """The import paths of the task's ``retry_on`` classes, or None if one has none (defined in ``__main__`` or a
    function): the child cannot tell then, and every failure counts as retryable, as for a shell command."""
    paths = [import_path_of(cls) for cls in task.retry_on]
    return None if None in paths else paths  # type: ignore[return-value]


def _spawn(
    program: list[str], env: dict[str, str], stdin: int, pass_fds: tuple[int, ...] = ()
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``program`` in a session of its own under :mod:`unified.lifeline`, which kills that session's processes
    when the worker ends, even by kill -9. Returns the process and the lifeline's write end, to close when the
    attempt has ended."""
    lifeline_read, lifeline_write = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", LIFELINE_SCRIPT, str(lifeline_read), *program],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(lifeline_read, *pass_fds),
            env=env,
            start_new_session=True,
        )
    except BaseException:
        os.close(lifeline_write)
        raise
    finally:
        os.close(lifeline_read)
    return proc, lifeline_write


def _last_err(logs: list[LogLine]) -> str:
    """``": <last stderr line>"``, or nothing if the child wrote none."""
    last = next((message for _, level, message in reversed(logs) if level == "WARNING"), "")
    return f": {last}" if last else ""


def _has_exited(pid: int) -> bool:
    """True once ``pid`` exited; leaves it unreaped so its group id cannot be reused before the group is killed."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL every process in the child's group (its session), then reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()


def _child_pythonpath() -> str:
    """This process's import path, so the child imports the same modules (tests, notebooks' cwd)."""
    paths = [os.getcwd() if entry == "" else entry for entry in sys.path]
    return os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))


# --- Task.run() -------------------------------------------------------------------------------------------------


def run_task_inline(task: Task, cancel_event: CancelSignal, params: dict[str, Any] | None = None) -> Any:
    """Task.run(): attempts in the calling thread with the task's retries and timeout; the result or TaskFailedError."""
    func = task.resolve()
    executor = _inline_executor()
    task_id = task.task_id or task.name
    metadata: dict[str, Any] = {}
    attempt = 0
    try:
        while True:
            attempt += 1
            ctx = TaskContext(
                task_id, attempt=attempt, params=params, metadata=metadata, cancel_event=_LinkedEvent(cancel_event)
            )
            outcome = executor.run_attempt(task, ctx, func)
            if func is None or task.isolation == "process":
                for _ts, level, message in outcome.logs:  # child output has no other way to the user's handlers
                    ctx.logger.log(logging.getLevelName(level), "%s", message)
            if outcome.state == "success":
                return outcome.result
            retry = outcome.state != "canceled" and outcome.retryable and task.retry.allows_retry(attempt)
            if retry and not cancel_event.is_set() and not cancel_event.wait(task.retry.delay(attempt)):
                continue
            state = "canceled" if cancel_event.is_set() else outcome.state
            error = outcome.error or {}
            detail = f": {error.get('type')}: {error.get('message')}" if error else ""
            raise TaskFailedError(
                f"task {task_id!r} ended {state} after {attempt} attempt{'s' * (attempt > 1)}{detail}",
                task_id=task_id,
                state=state,
                error=error,
            )
    finally:
        cancel_event.clear()  # a cancel stops this run only; the task can run again


_executor: Executor | None = None


def _inline_executor() -> Executor:
    global _executor
    if _executor is None:
        _executor = Executor()
    else:
        install_capture()  # cheap; someone may have reset the root handlers since
    return _executor
