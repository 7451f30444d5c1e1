"""One attempt of a claimed task in a worker pool: its Task and context loaded (the store's absence waited out), its
callable resolved and run by the executor, and what to report made of the outcome; and how long a worker waits for
an unreachable store.

A mixin of :class:`unified.worker.WorkerPool`, using its engine, executor and isolation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from unified.engine import Engine
from unified.errors import StoreError, UnifiedError
from unified.executor import Executor
from unified.store.records import TaskRecord
from unified.worker_parking import Report

log = logging.getLogger("unified.worker")

MAX_BACKOFF_SECONDS = 30.0


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive store errors: 0.5, 1, 2, ... capped."""
    return min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))


class AttemptRunning:
    """The attempts of a pool's runners (mixed in: see the module docstring for what it uses)."""

    engine: Engine
    executor: Executor
    worker_id: str
    isolation: str | None
    _inline: dict[str, int]  # task id -> the ident of the runner thread calling its code itself
    _give_up: Callable[[list[TaskRecord]], None]

    def _attempt(self, record: TaskRecord) -> Report | None:
        """Run one claimed attempt; returns what to report, None if the attempt is given up (never raises)."""
        cancel = self.engine.cancel_event(record.id)
        failures = 0
        while True:
            try:
                task, ctx = self.engine.prepare(record, cancel)
                break
            except StoreError as exc:  # the database is away: wait for it rather than fail the task
                failures += 1
                log.error("worker %s cannot load task %s (%s); retrying in %.1f s",
                          self.worker_id, record.id, exc, backoff(failures))  # fmt: skip
                if cancel.wait(backoff(failures)):  # lease lost or abandoned: no longer renewed, it expires
                    self._give_up([record])
                    return None
            except UnifiedError as exc:
                error = {"type": type(exc).__name__, "message": str(exc)}
                return record, "failure", {"error": error, "retryable": False}
        if self.isolation == "thread" or (self.isolation == "process" and task.func_path is not None):
            task.isolation = self.isolation
        func = task.resolve()
        inline = self.executor.runs_inline(task, func)
        if inline:
            self._inline[record.id] = threading.get_ident()
        began = self.engine.clock.now()  # not the claim: a task claimed ahead waited in the buffer since
        try:
            outcome = self.executor.run_attempt(task, ctx, func)
        except Exception:
            log.exception("worker %s failed while running task %s", self.worker_id, record.id)
            return record, "failure", {"error": {"type": "WorkerError", "message": "see the worker log"}}
        finally:
            if inline and self._inline.get(record.id) == threading.get_ident():  # not a later attempt's runner
                self._inline.pop(record.id, None)
        return record, outcome.state, {"result": outcome.result, "error": outcome.error, "retryable": outcome.retryable,
                                       "logs": outcome.logs, "metadata": ctx.metadata, "started_at": began}  # fmt: skip
