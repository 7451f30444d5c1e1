"""One attempt of a task: inline, thread with timeout, child process, shell command; timeouts, cancels, logs."""

import asyncio
import gc
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tasks as helpers
from unified import executor as executor_module
from unified.errors import ValidationError
from unified.executor import AttemptOutcome, Executor, error_info
from unified.task import Task, TaskContext
from unified.utils import split_lines


@pytest.fixture(scope="module")
def executor() -> Executor:
    return Executor()


def attempt(executor: Executor, task: Task, ctx: TaskContext | None = None) -> AttemptOutcome:
    return executor.run_attempt(task, ctx or TaskContext(task.task_id or "t"), task.resolve())


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Wait for a condition (not for time): poll ``predicate`` until true or ``timeout`` passes."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.005)
    return predicate()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rpartition(")")[2].split()[0] == "Z")


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def run_in_background(executor: Executor, task: Task, ctx: TaskContext) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        box["outcome"] = executor.run_attempt(task, ctx, task.resolve())
        box["returned_at"] = time.monotonic()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


# --- thread isolation ---------------------------------------------------------------------------------------------


def test_success_passes_args_and_kwargs(executor):
    outcome = attempt(executor, Task("t", func=helpers.add, args=(2,), kwargs={"b": 3}))
    assert (outcome.state, outcome.result, outcome.error, outcome.retryable) == ("success", 5, None, True)


def test_failure_carries_type_message_and_traceback_of_user_code(executor):
    outcome = attempt(executor, Task("t", func=helpers.boom, args=("bad input",)))
    assert outcome.state == "failure"
    assert outcome.retryable  # ValueError is an Exception, the default retry_on
    assert outcome.error["type"] == "ValueError"
    assert outcome.error["message"] == "bad input"
    assert "in boom" in outcome.error["traceback"]
    assert "raise ValueError(message)" in outcome.error["traceback"]
    assert "executor.py" not in outcome.error["traceback"]


def _recurse(n: int) -> None:
    if n == 0:
        raise ValueError("bottom")
    _recurse(n - 1)


def _chained() -> None:
    try:
        helpers.boom("first")
    except ValueError as exc:
        raise KeyError("second") from exc


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise TypeError("no text")


def _noted() -> None:
    exc = ValueError("with a note")
    exc.add_note("see the docs")
    raise exc


def _throw(exc: Exception) -> None:
    raise exc


def _bad_json() -> None:
    json.loads("{")  # json.decoder.JSONDecodeError: a class from outside builtins


@pytest.mark.parametrize(
    "raiser",
    [lambda: helpers.boom("lone"), lambda: _recurse(100), _chained, _noted, _bad_json, lambda: exec("x = = 1"),
     lambda: _throw(RuntimeError()), lambda: _throw(_Unprintable())],
)  # fmt: skip
def test_traceback_text_is_the_traceback_modules_without_carets(raiser) -> None:
    try:
        raiser()
    except Exception as caught:
        exc = caught
    expected = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    todo = [expected]
    while todo:  # carets off everywhere, as the executor does
        current = todo.pop()
        for frame in current.stack:
            frame.colno = None
        todo += [c for c in (current.__cause__, current.__context__) if c is not None]
    assert error_info(exc)["traceback"] == "".join(expected.format())
    assert error_info(exc)["traceback"] == "".join(expected.format())  # again, from the frames' kept text


def test_equal_code_in_two_files_keeps_each_files_traceback_text(tmp_path) -> None:
    # code objects compare equal across files (their filename is not compared): each frame's kept text must still be
    # its own file's
    source = "def fail():\n    raise ValueError('same code')\n"
    texts = []
    for name in ("first_copy.py", "second_copy.py"):
        path = tmp_path / name
        path.write_text(source)
        namespace: dict[str, Any] = {}
        exec(compile(source, str(path), "exec"), namespace)
        try:
            namespace["fail"]()
        except ValueError as exc:
            texts.append(error_info(exc)["traceback"])
    assert f'"{tmp_path / "first_copy.py"}", line 2, in fail' in texts[0]
    assert f'"{tmp_path / "second_copy.py"}", line 2, in fail' in texts[1]
    assert all("raise ValueError('same code')" in text for text in texts)


@pytest.mark.parametrize("timeout", [None, 5], ids=["inline", "thread"])
def test_a_failure_outside_retry_on_is_not_retryable(executor, timeout):
    assert not attempt(executor, Task("t", func=helpers.boom, retry_on=KeyError, timeout=timeout)).retryable
    assert attempt(executor, Task("t", func=helpers.boom, retry_on=ValueError, timeout=timeout)).retryable


@pytest.mark.parametrize("timeout", [None, 5], ids=["inline", "thread"])
def test_an_outcome_keeps_no_frame_of_the_failed_attempt(executor, timeout):
    # the exception's traceback holds the frames of the attempt (and of whoever holds the outcome): kept in the
    # outcome, every failed attempt was a reference cycle that only the garbage collector freed
    helpers.MARKERS.clear()
    gc.disable()
    try:
        outcome = attempt(executor, Task("t", func=helpers.boom_holding_marker, timeout=timeout))
        assert outcome.state == "failure" and "in boom_holding_marker" in outcome.error["traceback"]
        assert helpers.MARKERS[0]() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("raised", [asyncio.CancelledError, GeneratorExit, KeyboardInterrupt])
def test_a_base_exception_in_a_runner_thread_is_a_failure(executor, raised: type[BaseException]) -> None:
    def raising() -> None:
        raise raised("from the task")

    box: dict[str, AttemptOutcome] = {}
    runner = threading.Thread(target=lambda: box.update(outcome=attempt(executor, Task("t", func=raising))))
    runner.start()
    runner.join(5)
    assert box["outcome"].state == "failure" and box["outcome"].error["type"] == raised.__name__


def test_ctrl_c_in_the_main_thread_still_stops_the_caller(executor) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(executor, Task("t", func=interrupted))


def test_failure_in_timeout_thread_has_traceback(executor):
    outcome = attempt(executor, Task("t", func=helpers.boom, timeout=5))
    assert outcome.state == "failure"
    assert outcome.retryable
    assert "in boom" in outcome.error["traceback"]


def test_context_injected_by_name(executor):
    def job(x, ctx):
        return (x, ctx.task_id, ctx.attempt, ctx.params)

    ctx = TaskContext("named", attempt=2, params={"day": "monday"})
    outcome = executor.run_attempt(Task("named", func=job, args=(1,)), ctx, job)
    assert outcome.result == (1, "named", 2, {"day": "monday"})


def test_context_injected_by_annotation(executor):
    def job(context: TaskContext):
        return context.task_id

    assert attempt(executor, Task("by-annotation", func=job)).result == "by-annotation"
    # the helper module uses postponed annotations: the annotation is the string "TaskContext"
    assert attempt(executor, Task("by-string", func=helpers.annotated)).result == "by-string"


class _Holder:
    def method(self, ctx, i):
        return [ctx.task_id, i]


def _ctx_between(a, ctx, b=0):
    return [a, ctx.task_id, b]


def _ctx_keyword_only(*values, ctx):
    return [*values, ctx.task_id]


def _ctx_positional_only(ctx, i, /):
    return [ctx.task_id, i]


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "expected"),
    [
        (helpers.ctx_first, (21,), {}, ["c", 21, 0]),
        (helpers.ctx_first, (21, 2), {}, ["c", 21, 2]),
        (helpers.ctx_first, (), {"i": 5}, ["c", 5, 0]),
        (_ctx_between, (1, 2), {}, [1, "c", 2]),
        (_ctx_between, (1,), {"b": 3}, [1, "c", 3]),
        (_ctx_between, (), {"a": 1}, [1, "c", 0]),  # the args stop before ctx: it goes by keyword
        (_ctx_keyword_only, (1, 2), {}, [1, 2, "c"]),
        (_ctx_positional_only, (7,), {}, ["c", 7]),
        (_Holder().method, (4,), {}, ["c", 4]),  # self is bound: ctx is the method's first parameter
    ],
)
def test_context_is_bound_where_it_is_declared(executor, func, args, kwargs, expected):
    assert attempt(executor, Task("c", func=func, args=args, kwargs=kwargs)).result == expected
    assert attempt(executor, Task("c", func=func, args=args, kwargs=kwargs, timeout=5)).result == expected


def test_context_declared_first_with_positional_args_in_a_child_process(executor):
    outcome = attempt(executor, Task("proc", func=helpers.ctx_first, args=(21,), isolation="process"))
    assert (outcome.state, outcome.result) == ("success", ["proc", 21, 0])


def test_function_without_context_gets_none_injected(executor):
    def job(**kwargs):
        return kwargs

    assert attempt(executor, Task("t", func=job, kwargs={"a": 1})).result == {"a": 1}


def test_async_function_runs_to_completion(executor):
    async def job(ctx):
        await asyncio.sleep(0)
        return ctx.task_id

    assert attempt(executor, Task("async", func=job)).result == "async"
    assert attempt(executor, Task("t", func=helpers.async_add, args=(1, 2), timeout=5)).result == 3


def test_async_failure_is_a_failure(executor):
    async def job():
        raise KeyError("missing")

    outcome = attempt(executor, Task("t", func=job))
    assert outcome.state == "failure"
    assert outcome.error["type"] == "KeyError"


def test_async_function_inside_a_running_event_loop(executor):
    async def job(ctx):
        ctx.logger.info("inside")
        return 42

    async def notebook_cell():
        return attempt(executor, Task("nb", func=job))

    outcome = asyncio.run(notebook_cell())
    assert outcome.result == 42
    assert [line[2] for line in outcome.logs] == ["inside"]


def test_thread_timeout_returns_on_time(executor):
    started = time.monotonic()
    outcome = attempt(executor, Task("t", func=helpers.sleep_for, args=(5,), timeout=0.2))
    assert time.monotonic() - started < 2
    assert outcome.state == "timeout"
    assert outcome.error["type"] == "TimeoutError"
    assert "0.2 s timeout" in outcome.error["message"]
    assert "in sleep_for" in outcome.error["traceback"]  # where the abandoned thread was stuck
    assert outcome.retryable


@pytest.mark.parametrize(("retry_on", "retryable"), [((OSError,), True), ((ValueError,), False)])
def test_a_timeout_is_retried_only_if_retry_on_takes_timeout_error(executor, retry_on: tuple, retryable: bool) -> None:
    for task in (Task("t", func=helpers.sleep_for, args=(5,), timeout=0.1, retry_on=retry_on),
                 Task("t", command="sleep 5", timeout=0.1, retry_on=retry_on)):  # fmt: skip
        outcome = attempt(executor, task)
        assert (outcome.state, outcome.retryable) == ("timeout", retryable)  # TimeoutError is an OSError


def test_timeout_sets_the_cooperative_cancel_flag(executor):
    seen = threading.Event()

    def job(ctx):
        if helpers.wait_for_cancel(ctx, 5):
            seen.set()

    ctx = TaskContext("t")
    outcome = executor.run_attempt(Task("t", func=job, timeout=0.2), ctx, job)
    assert outcome.state == "timeout"
    assert ctx.cancelled
    assert seen.wait(2)


def test_cancel_while_running_returns_promptly(executor):
    started, never = threading.Event(), threading.Event()

    def job():
        started.set()
        never.wait(5)  # not cooperative: the executor must not wait for it

    ctx = TaskContext("t")
    thread, box = run_in_background(executor, Task("t", func=job, timeout=30), ctx)
    assert started.wait(2)
    canceled_at = time.monotonic()
    ctx._cancel_event.set()
    thread.join(2)
    assert box["outcome"].state == "canceled"
    assert box["returned_at"] - canceled_at < 0.2
    never.set()


def test_return_after_cancel_is_canceled(executor):
    def job(ctx):
        ctx._cancel_event.set()  # what the engine does when the task is canceled mid-run
        return "done anyway"

    assert attempt(executor, Task("t", func=job)).state == "canceled"
    assert attempt(executor, Task("t", func=job, timeout=5)).state == "canceled"


def test_canceled_before_start_does_not_run(executor):
    calls = []
    ctx = TaskContext("t")
    ctx._cancel_event.set()
    outcome = executor.run_attempt(Task("t", func=calls.append, args=(1,)), ctx, calls.append)
    assert outcome.state == "canceled"
    assert calls == []


def test_command_without_func_or_command_is_refused(executor):
    task = Task("t", func=helpers.add)
    with pytest.raises(ValidationError):
        executor.run_attempt(task, TaskContext("t"), None)


# --- log capture ---------------------------------------------------------------------------------------------------


def test_logs_from_ctx_logger_and_logging_module_are_captured(executor):
    def job(ctx):
        ctx.logger.info("via ctx %s", 1)
        ctx.logger.debug("debug via ctx")
        logging.getLogger("tests.some.module").warning("via logging")
        logging.getLogger("tests.some.module").debug("below the root level: dropped")

    for timeout in (None, 5):
        outcome = executor.run_attempt(Task("t", func=job, timeout=timeout), TaskContext("t"), job)
        assert [(level, message) for _, level, message in outcome.logs] == [
            ("INFO", "via ctx 1"),
            ("DEBUG", "debug via ctx"),
            ("WARNING", "via logging"),
        ]
        assert all(abs(ts - time.time()) < 60 for ts, _, _ in outcome.logs)


def test_what_a_thread_task_prints_is_captured_and_still_printed(executor, capsys) -> None:
    def job() -> None:
        print("rows:", 3)
        print("two\nlines", file=sys.stderr)

    for timeout in (None, 5):
        outcome = executor.run_attempt(Task("t", func=job, timeout=timeout), TaskContext("t"), job)
        assert [(level, message) for _, level, message in outcome.logs] == [
            ("INFO", "rows: 3"),
            ("WARNING", "two"),
            ("WARNING", "lines"),
        ]
    print("outside any attempt")
    assert executor.run_attempt(Task("t", func=int), TaskContext("t"), int).logs == []
    printed = capsys.readouterr()
    assert printed.out == "rows: 3\n" * 2 + "outside any attempt\n" and printed.err == "two\nlines\n" * 2


def test_a_logging_handler_that_fails_adds_no_lines_to_the_attempt(executor, monkeypatch) -> None:
    broken = io.StringIO()
    broken.close()  # a handler left writing to a closed stream reports its failure with print(file=sys.stderr)
    monkeypatch.setattr(logging.root, "handlers", [*logging.root.handlers, logging.StreamHandler(broken)])

    def job(ctx) -> None:
        ctx.logger.warning("one line")
        print("and one printed")

    outcome = attempt(executor, Task("t", func=job))
    assert [(level, message) for _, level, message in outcome.logs] == [
        ("WARNING", "one line"),
        ("INFO", "and one printed"),
    ]


def test_logged_exception_includes_its_traceback(executor):
    def job(ctx):
        try:
            raise RuntimeError("inner")
        except RuntimeError:
            ctx.logger.exception("it broke")

    (line,) = attempt(executor, Task("t", func=job)).logs
    assert line[1] == "ERROR"
    assert line[2].startswith("it broke") and "RuntimeError: inner" in line[2]


@pytest.mark.parametrize("timeout", [None, 10])
def test_concurrent_attempts_capture_only_their_own_lines(executor, timeout):
    barrier = threading.Barrier(8, timeout=5)

    def job(ctx):
        barrier.wait()
        for i in range(50):
            ctx.logger.info("%s line %d", ctx.task_id, i)
            logging.getLogger("tests.shared").warning("%s shared %d", ctx.task_id, i)
        return ctx.task_id

    outcomes: dict[str, AttemptOutcome] = {}

    def one(name: str) -> None:
        outcomes[name] = executor.run_attempt(Task(name, func=job, timeout=timeout), TaskContext(name), job)

    threads = [threading.Thread(target=one, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 8
    for name, outcome in outcomes.items():
        assert outcome.state == "success"
        messages = [message for _, _, message in outcome.logs]
        assert len(messages) == 100
        assert all(message.startswith(f"{name} ") for message in messages)


def test_records_outside_an_attempt_are_not_captured(executor):
    outcome = attempt(executor, Task("t", func=helpers.add, args=(1, 1)))
    logging.getLogger("tests.outside").warning("after the attempt")
    assert outcome.logs == []


# --- process isolation ---------------------------------------------------------------------------------------------


def test_process_success_with_context_metadata_and_logs(executor):
    task = Task("proc", func=helpers.with_context, kwargs={"factor": 2}, isolation="process")
    ctx = TaskContext("proc", run_id="r1", attempt=2, params={"p": 1}, upstream={"up": [1]}, metadata={"old": True})
    outcome = executor.run_attempt(task, ctx, task.resolve())
    assert outcome.state == "success", outcome.error
    assert outcome.result == {
        "task_id": "proc",
        "run_id": "r1",
        "attempt": 2,
        "params": {"p": 1},
        "upstream": {"up": [1]},
    }
    assert ctx.metadata == {"old": True, "rows": 6}
    lines = [(level, message) for _, level, message in outcome.logs]
    assert ("INFO", "hello from proc") in lines
    assert ("WARNING", "a warning") in lines
    assert ("INFO", "printed line") in lines
    assert ("WARNING", "to stderr") in lines


class _CountedBytes(bytes):
    """What the executor reads from a pipe, counting each concatenation into a copy of over 1 MB."""

    big_copies = 0

    def __add__(self, other):
        _CountedBytes.big_copies += len(self) + len(other) > 1_000_000
        return bytes(self) + other

    def __radd__(self, other):  # bytes + a subclass of bytes: Python asks the subclass first
        _CountedBytes.big_copies += len(self) + len(other) > 1_000_000
        return other + bytes(self)


class _OsReadingCountedBytes:
    def __getattr__(self, name):
        return getattr(os, name)

    def read(self, fd, size):
        return _CountedBytes(os.read(fd, size))


def test_a_large_process_result_arrives_whole_without_copying_the_line_per_chunk(executor, monkeypatch):
    monkeypatch.setattr(executor_module, "os", _OsReadingCountedBytes())
    _CountedBytes.big_copies = 0
    size = 4_000_000  # one JSON line of some 60 reads of 64 KB
    outcome = attempt(executor, Task("big", func=helpers.text_of_size, args=(size,), isolation="process"))
    assert outcome.state == "success"
    assert outcome.result == helpers.text_of_size(size)
    assert _CountedBytes.big_copies == 0  # it was one per chunk: quadratic (40 MB took 23 s)


def test_split_lines_joins_a_line_read_in_many_chunks_once():
    pending: list[bytes] = []
    assert [split_lines(pending, chunk) for chunk in (b"ab", b"c", b"")] == [[], [], []]
    assert pending == [b"ab", b"c", b""]  # kept as read, not joined per chunk
    assert split_lines(pending, b"d\nline 2\n\nrest") == [b"abcd", b"line 2", b""]
    assert pending == [b"rest"]
    assert split_lines(pending, b"\n") == [b"rest"]
    assert pending == []


def test_process_failure_carries_child_traceback(executor):
    outcome = attempt(executor, Task("t", func=helpers.boom, args=("child says no",), isolation="process"))
    assert outcome.state == "failure"
    assert outcome.error["type"] == "ValueError"
    assert outcome.error["message"] == "child says no"
    assert "in boom" in outcome.error["traceback"]
    assert outcome.retryable  # ValueError is an Exception, the default retry_on


@pytest.mark.parametrize(("retry_on", "retryable"), [((ValueError,), True), ((KeyError, TypeError), False)])
def test_process_failure_is_retried_as_retry_on_says(executor, retry_on: tuple, retryable: bool) -> None:
    task = Task("t", func=helpers.boom, isolation="process", retry_on=retry_on)
    assert attempt(executor, task).retryable is retryable


def test_process_task_adding_a_task_is_told_to_run_in_a_thread_and_not_retried(executor) -> None:
    outcome = attempt(executor, Task("t", func=helpers.adds_a_task, isolation="process", max_retries=3))
    assert (
        outcome.error["type"] == "AddTaskUnavailable"
        and "Run the task that adds tasks in a thread" in outcome.error["message"]
    )
    assert outcome.retryable is False  # every attempt would fail alike


def test_process_failure_with_a_retry_on_class_a_child_cannot_import_is_reported_as_it_is(executor) -> None:
    class Local(Exception):  # no import path: the child cannot tell whether its exception is one
        pass

    outcome = attempt(executor, Task("t", func=helpers.boom, isolation="process", retry_on=(Local,)))
    assert (outcome.error["type"], outcome.retryable) == ("ValueError", True)


def test_process_result_that_is_not_json_is_not_retried(executor) -> None:
    assert attempt(executor, Task("t", func=helpers.not_json, isolation="process")).retryable is False


def test_process_async_function(executor):
    assert (
        attempt(executor, Task("t", func="tests.helpers.tasks:async_add", args=(2, 5), isolation="process")).result == 7
    )


def test_process_non_json_result_is_a_serialization_failure(executor):
    outcome = attempt(executor, Task("t", func=helpers.not_json, isolation="process"))
    assert outcome.state == "failure"
    assert outcome.error["type"] == "SerializationError"
    assert "set is not JSON-serialisable" in outcome.error["message"]


def test_process_non_json_arguments_fail_before_starting(executor):
    outcome = attempt(executor, Task("t", func=helpers.add, args=(object(), 1), isolation="process"))
    assert outcome.state == "failure"
    assert outcome.error["type"] == "SerializationError"


def test_process_that_dies_without_reporting(executor):
    outcome = attempt(executor, Task("t", func=helpers.exit_hard, args=(3,), isolation="process"))
    assert outcome.state == "failure"
    assert outcome.error["type"] == "ProcessDied"
    assert "code 3" in outcome.error["message"] and "about to die" in outcome.error["message"]


def test_process_timeout_kills_the_child(executor, tmp_path):
    pid_file = tmp_path / "pid"
    task = Task("t", func=helpers.write_pid_and_sleep, args=(str(pid_file), 30), isolation="process", timeout=1)
    started = time.monotonic()
    outcome = attempt(executor, task)
    assert time.monotonic() - started < 3
    assert outcome.state == "timeout"
    assert "1 s timeout" in outcome.error["message"]
    pid = int(pid_file.read_text())
    assert wait_until(lambda: not alive(pid), timeout=1)


def cancel_once_started(executor, task, pid_file):
    """Run ``task`` in the background, cancel it once it wrote ``pid_file``, check the attempt returned
    ``canceled`` within a second, and return the pid it wrote."""
    ctx = TaskContext("t")
    thread, box = run_in_background(executor, task, ctx)
    assert wait_until(pid_file.exists)
    canceled_at = time.monotonic()
    ctx._cancel_event.set()
    thread.join(5)
    assert box["outcome"].state == "canceled"
    assert box["returned_at"] - canceled_at < 1
    return int(pid_file.read_text())


def test_process_cancel_kills_the_child_within_a_second(executor, tmp_path):
    pid_file = tmp_path / "pid"
    task = Task("t", func=helpers.write_pid_and_sleep, args=(str(pid_file), 30), isolation="process", timeout=60)
    pid = cancel_once_started(executor, task, pid_file)
    assert wait_until(lambda: not alive(pid), timeout=1)


def test_lambda_with_process_isolation_is_refused_at_construction():
    with pytest.raises(ValidationError, match="import"):
        Task("t", func=lambda: 1, isolation="process")


# --- shell commands ------------------------------------------------------------------------------------------------


def test_shell_success_returns_stripped_stdout(executor):
    outcome = executor.run_attempt(Task("t", command="echo hi"), TaskContext("t"), None)
    assert (outcome.state, outcome.result) == ("success", "hi")
    assert [(level, message) for _, level, message in outcome.logs] == [("INFO", "hi")]


def test_shell_list_runs_without_a_shell_and_sees_task_env(executor):
    outcome = executor.run_attempt(
        Task("t", command=["sh", "-c", 'echo "$UNIFIED_TASK_ID" "$0"', "x*"]), TaskContext("env-id"), None
    )
    assert outcome.result == "env-id x*"


def test_shell_failure_names_exit_code_and_last_stderr_line(executor):
    command = "echo out; echo first >&2; echo 'last words' >&2; exit 4"
    outcome = executor.run_attempt(Task("t", command=command), TaskContext("t"), None)
    assert outcome.state == "failure"
    assert outcome.error["type"] == "CommandFailed"
    assert "exited with code 4" in outcome.error["message"]
    assert "last words" in outcome.error["message"]
    assert [(level, message) for _, level, message in outcome.logs] == [
        ("INFO", "out"),
        ("WARNING", "first"),
        ("WARNING", "last words"),
    ]


@pytest.mark.parametrize(
    ("command", "state", "said"),
    [
        ("yes | head -n1", "success", "y"),  # SIGPIPE at its default ends `yes` (ignored, it ran on for good)
        (
            "trap 'echo caught' USR1; kill -USR1 0; echo done",
            "success",
            "done",
        ),  # its group's signal spares the launcher
        ("kill -9 $$", "failure", "command was killed by signal 9"),
        ("kill -TERM $$", "failure", "command was killed by signal 15"),
    ],
)
def test_shell_commands_get_the_signals_and_statuses_of_a_plain_shell(executor, command, state, said) -> None:
    outcome = executor.run_attempt(Task("t", command=command, timeout=10), TaskContext("t"), None)
    assert outcome.state == state
    assert said == (outcome.result.splitlines()[-1] if state == "success" else outcome.error["message"])


def test_shell_missing_program_is_a_failure(executor):
    outcome = executor.run_attempt(Task("t", command=["/nonexistent/program"]), TaskContext("t"), None)
    assert outcome.state == "failure"
    assert outcome.error["type"] == "FileNotFoundError"


def test_shell_timeout_kills_the_whole_process_group(executor):
    started = time.monotonic()
    task = Task("t", command="echo $$; sh -c 'sleep 30 & sleep 30'", timeout=0.5)
    outcome = executor.run_attempt(task, TaskContext("t"), None)
    assert time.monotonic() - started < 2
    assert outcome.state == "timeout"
    pgid = int(outcome.logs[0][2])
    assert wait_until(lambda: group_members(pgid) == [], timeout=1)  # SIGKILL lands asynchronously


def test_shell_cancel_kills_the_whole_process_group(executor, tmp_path):
    pid_file = tmp_path / "pid"
    task = Task("t", command=f"sleep 30 & echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; sleep 30")
    pgid = cancel_once_started(executor, task, pid_file)
    assert wait_until(lambda: group_members(pgid) == [], timeout=1)


def test_shell_background_leftovers_do_not_hold_the_attempt(executor):
    started = time.monotonic()
    outcome = executor.run_attempt(Task("t", command="echo $$; sleep 30 & echo done"), TaskContext("t"), None)
    assert time.monotonic() - started < 2
    assert outcome.state == "success"
    assert outcome.result.endswith("done")
    pgid = int(outcome.logs[0][2])
    assert wait_until(lambda: group_members(pgid) == [], timeout=1)


def test_an_exception_whose_text_fails_is_still_recorded(executor) -> None:
    def unprintable() -> None:
        raise _Unprintable()

    outcome = attempt(executor, Task("t", func=unprintable))
    assert outcome.state == "failure" and outcome.error["message"] == "<exception str() failed>"
    assert outcome.error["traceback"].endswith("_Unprintable: <exception str() failed>\n")


DEADLOCK_PROBE = """
import gc, threading, time
from unified.executor import _where

class Holder:  # cyclic garbage holding a threading.local, as a dropped engine or store is
    def __init__(self):
        self.local = threading.local()
        self.local.value = self

def stuck():
    time.sleep(0.05)

gc.set_threshold(1)  # a collection at nearly every allocation, as the one that hung the suite
for _ in range(300):
    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    Holder()
    _where(thread)
print("done")
"""


def test_finding_where_an_abandoned_thread_is_stuck_cannot_hang_the_garbage_collector():
    # CPython 3.11 could deadlock in sys._current_frames() when a collection freed a threading.local meanwhile
    run = subprocess.run([sys.executable, "-c", DEADLOCK_PROBE], capture_output=True, text=True, timeout=20,
                         cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert run.stdout.strip() == "done", run.stderr
