"""Module-level task functions the tests run, including in child processes (isolation='process')."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import weakref
from datetime import UTC, datetime

from unified.task import TaskContext


def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


def boom(message: str = "boom") -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


class Marker:
    """An object whose lifetime a test follows with a weak reference."""


MARKERS: list[weakref.ref[Marker]] = []


def boom_holding_marker() -> None:
    """Raise ValueError while a local variable holds a new Marker (its weak reference goes into MARKERS)."""
    marker = Marker()
    MARKERS.append(weakref.ref(marker))
    raise ValueError("boom")


def sleep_for(seconds: float) -> str:
    """Sleep, then return "slept"."""
    time.sleep(seconds)
    return "slept"


def timed_sleep(seconds: float) -> list[float]:
    """Sleep; return when this run began and ended (epoch seconds), as the process that ran it saw them."""
    began = time.time()
    time.sleep(seconds)
    return [began, time.time()]


def write_pid_and_sleep(path: str, seconds: float) -> None:
    """Write this process's pid to ``path`` (atomically), then sleep."""
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(seconds)


def start_sleeper_and_sleep(path: str, seconds: float) -> None:
    """Start a ``sleep`` process of its own, write that process's pid to ``path`` (atomically), then sleep."""
    sleeper = subprocess.Popen(["sleep", str(seconds)])
    write_pid = sleeper.pid
    with open(path + ".tmp", "w") as f:
        f.write(str(write_pid))
    os.replace(path + ".tmp", path)
    time.sleep(seconds)


def sets_unstorable_metadata(ctx: TaskContext) -> int:
    """Put a datetime in ``ctx.metadata``, which SQL stores cannot keep, and return 1."""
    ctx.metadata["when"] = datetime.now(UTC)
    return 1


def logs_undecodable_bytes() -> str:
    """Log text holding bytes decoded with surrogateescape (half surrogate pairs), as a file name may; return "ok"."""
    logging.getLogger("task").warning("read %s", b"caf\xe9".decode("utf-8", "surrogateescape"))
    return "ok"


def adds_a_task(ctx: TaskContext) -> str:
    """Add a child task with ``ctx.add_task``; return its id."""
    from unified.task import Task

    return ctx.add_task(Task(task_id="child", func=add, args=(1, 2)))


def nested(depth: int, kind: str = "list") -> object:
    """A list holding a list ... ``depth`` deep (tuples with ``kind="tuple"``)."""
    value: object = 1
    for _ in range(depth):
        value = (value,) if kind == "tuple" else [value]
    return value


def first_attempt_waits_for_its_cancel(ctx: TaskContext, later_seconds: float = 0.0) -> int:
    """Attempt 1 runs until it is told to stop (10 s at most); later attempts sleep ``later_seconds`` (unless told to
    stop) and return their number."""
    deadline = time.monotonic() + (10 if ctx.attempt == 1 else later_seconds)
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    return ctx.attempt


def not_json() -> object:
    """Return something JSON cannot hold."""
    return {1, 2, 3}


def with_context(ctx: TaskContext, factor: int = 1) -> dict:
    """Describe the context, log through ctx.logger, print, and write metadata."""
    ctx.logger.info("hello from %s", ctx.task_id)
    logging.getLogger("tests.helpers").warning("a warning")
    print("printed line")
    print("to stderr", file=sys.stderr)
    ctx.metadata["rows"] = 3 * factor
    return {
        "task_id": ctx.task_id,
        "run_id": ctx.run_id,
        "attempt": ctx.attempt,
        "params": ctx.params,
        "upstream": ctx.upstream,
    }


def ctx_first(ctx: TaskContext, i: int, j: int = 0) -> list:
    """Declare ctx first, then positional parameters (``queue_task(ctx_first, args=(21,))``)."""
    return [ctx.task_id, i, j]


def text_of_size(size: int) -> str:
    """Return ``size`` characters (a result too big for one read of a pipe)."""
    return "".join(chr(ord("a") + i % 26) for i in range(size // 1000)) * 1000


def exit_hard(code: int = 3) -> None:
    """Leave without reporting, as a crash would."""
    print("about to die", file=sys.stderr, flush=True)
    os._exit(code)


def annotated(context: TaskContext) -> str:
    """Receive the context through an annotated parameter that is not named ctx."""
    return context.task_id


async def async_add(a: int, b: int) -> int:
    """An async function: return a + b."""
    return a + b


def wait_for_cancel(ctx: TaskContext, seconds: float = 5.0) -> bool:
    """Poll ctx.cancelled cooperatively for up to ``seconds``; True if it was seen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled:
            return True
        time.sleep(0.005)
    return False


class Flaky:
    """A callable that raises on its first ``failures`` calls, then returns "ok"; counts its calls."""

    def __init__(self, failures: int, error: type[Exception] = ValueError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def hang_first_time(marker: str) -> str:
    """On the first call create ``marker`` and hang (the test kills the process); later calls return at once."""
    if not os.path.exists(marker):
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(60)
    return "recovered"
