"""The child side of process isolation: ``python -m unified.executor_child REPORT_FD`` reads one JSON job on stdin,
runs the function it names, and reports log records and the JSON result (or the error) as JSON lines on the file
descriptor REPORT_FD. Its stdout and stderr stay free for the task's own output, which the parent captures.

Only JSON crosses the boundary: nothing is pickled either way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any, TextIO

from unified.errors import SerializationError, ValidationError
from unified.executor import call_with_context, error_info
from unified.logger import TASK_LOGGER
from unified.task import Task, TaskContext
from unified.utils import resolve_import_path, to_json


class _ReportHandler(logging.Handler):
    """Sends every record to the parent as a ``{"log": [ts, level, message]}`` line."""

    def __init__(self, report: _Reporter) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._report = report

    def emit(self, record: logging.LogRecord) -> None:
        """Report one record."""
        self._report.send(json.dumps({"log": [record.created, record.levelname, self.format(record)]}))


class _Reporter:
    """One line of JSON per message on the report pipe, whole lines even when task threads log at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, line: str) -> None:
        """Write ``line`` and flush it."""
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class AddTaskUnavailable(ValidationError):
    """ctx.add_task in a child process: no attempt of the same task can do better, so it is not retried."""


def _no_add_task(task: Task) -> str:
    raise AddTaskUnavailable(
        f"ctx.add_task({task.task_id or task.name!r}) is not available with isolation='process': the child process "
        "has no engine to add tasks to. Run the task that adds tasks in a thread (the default isolation)"
    )


def run_job(job: dict[str, Any], reporter: _Reporter) -> None:
    """Run the job's function with a fresh TaskContext and report its result, metadata or error."""
    logging.root.addHandler(_ReportHandler(reporter))
    logging.root.setLevel(job.get("log_level", logging.WARNING))
    logging.getLogger(TASK_LOGGER).setLevel(logging.DEBUG)
    ctx = TaskContext(
        job["task_id"],
        run_id=job.get("run_id"),
        attempt=job.get("attempt", 1),
        params=job.get("params"),
        upstream=job.get("upstream"),
        metadata=job.get("metadata") or {},
        add_task=_no_add_task,
    )
    try:
        func = resolve_import_path(job["func"])
        result = call_with_context(func, tuple(job.get("args", ())), job.get("kwargs") or {}, ctx)
        body = '"result":' + to_json(result, "the task's result")
    except SerializationError as exc:  # of the result: its traceback would only show json internals; not retried
        error = {"type": "SerializationError", "message": str(exc), "traceback": ""}
        body = '"error":' + json.dumps(error) + ',"retryable":false'
    except BaseException as exc:
        paths = job.get("retry_on")
        retryable = not isinstance(exc, AddTaskUnavailable) and (
            paths is None or isinstance(exc, tuple(resolve_import_path(path) for path in paths))
        )
        body = '"error":' + json.dumps(error_info(exc), default=str) + ',"retryable":' + json.dumps(retryable)
    try:
        metadata = to_json(ctx.metadata, "ctx.metadata")
    except ValueError as exc:
        logging.getLogger(TASK_LOGGER).warning("ctx.metadata was not sent back: %s", exc)
        metadata = "{}"
    reporter.send("{" + body + ',"metadata":' + metadata + "}")


def main() -> None:
    """Entry point of the child process."""
    job = json.loads(sys.stdin.buffer.read())
    reporter = _Reporter(os.fdopen(int(sys.argv[1]), "w", encoding="utf-8"))
    run_job(job, reporter)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # do not wait for threads the task left behind


if __name__ == "__main__":
    main()
