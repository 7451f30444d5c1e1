"""Workers: threads that claim ready tasks, run each attempt with the executor and report to the engine.

A pool holds a lease on every task it runs and renews it from a heartbeat thread; a task whose lease is
taken away (canceled, or taken over after this process stalled) is told to stop. ``run_once`` and
``run_until_idle`` drain the queue in the calling thread, for tests and scripts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from unified.engine import Engine
from unified.errors import StoreError, UnifiedError
from unified.executor import Executor
from unified.store.base import TaskRecord
from unified.utils import new_id

log = logging.getLogger("unified.worker")

MAX_BACKOFF_SECONDS = 30.0


def default_worker_id() -> str:
    """``host:pid:random`` — unique per pool, readable in attempt records."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"


class WorkerPool:
    """``max_workers`` threads serving ``queues`` (all when None) of one engine."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor | None = None,
        max_workers: int = 4,
        queues: Iterable[str] | None = None,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 10.0,
        poll_seconds: float = 1.0,
        worker_id: str | None = None,
    ) -> None:
        if max_workers < 0:
            raise ValueError("max_workers must be 0 or more")
        if heartbeat_seconds >= lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds, or leases lapse between beats")
        self.engine = engine
        self.executor = executor or Executor(engine.clock)
        self.max_workers = max_workers
        self.queues = list(queues) if queues is not None else None
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or default_worker_id()
        self._held: dict[str, int] = {}  # task id -> attempt number, for the heartbeat
        self._cond = threading.Condition()
        self._signals = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        engine.on_ready(self.wake)
        engine.clock.on_advance(lambda: self.wake(max_workers or 1))

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads and the heartbeat."""
        if self._threads:
            return
        for n in range(self.max_workers):
            thread = threading.Thread(target=self._loop, name=f"unified-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._heartbeat_loop, name="unified-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def stop(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Stop taking work. With ``wait``, let running attempts finish for up to ``timeout`` seconds, then hand
        back what is still running (it returns to the queue for another worker) and stop those attempts."""
        self._stopping.set()
        self.wake(len(self._threads))
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for thread in self._threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for task_id, attempt in list(self._held.items()):
            try:
                if self.engine.hand_back(task_id, attempt):
                    log.warning("worker %s handed back task %s (attempt %d)", self.worker_id, task_id, attempt)
            except UnifiedError as exc:
                log.error("worker %s could not hand back task %s (%s); its lease will expire", self.worker_id,
                          task_id, exc)  # fmt: skip
            self.engine.cancel_event(task_id).set()
        self._threads.clear()

    def wake(self, count: int = 1) -> None:
        """Tell up to ``count`` idle threads that work may be ready."""
        with self._cond:
            self._signals += count
            self._cond.notify(count)

    # -- draining ----------------------------------------------------------------------------------------
    def run_once(self, limit: int = 1) -> int:
        """Claim up to ``limit`` ready tasks and run them in this thread; returns how many ran."""
        claimed = self.engine.claim(self.worker_id, limit, self.queues, self.lease_seconds)
        for record in claimed:
            self._execute(record)
        return len(claimed)

    def run_until_idle(self, max_tasks: int | None = None) -> int:
        """Run ready tasks in this thread until none is ready now; returns how many ran."""
        total = 0
        while max_tasks is None or total < max_tasks:
            if not self.run_once():
                break
            total += 1
        return total

    # -- internals ---------------------------------------------------------------------------------------
    def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                if self.run_once():
                    failures = 0
                    continue
                failures = 0
            except StoreError as exc:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
                log.error("worker %s cannot reach the store (%s); retrying in %.1f s", self.worker_id, exc, delay)
                self._stopping.wait(delay)
                continue
            self._idle_wait()

    def _idle_wait(self) -> None:
        timeout = self.poll_seconds
        due = self.engine.store.next_not_before()
        if due is not None:
            timeout = max(0.0, min(timeout, due - self.engine.clock.now()))
        with self._cond:
            if self._signals <= 0 and timeout > 0:
                self._cond.wait(timeout)
            self._signals = max(0, self._signals - 1)

    def _execute(self, record: TaskRecord) -> None:
        cancel = self.engine.cancel_event(record.id)
        self._held[record.id] = record.attempts
        try:
            try:
                task, ctx = self.engine.prepare(record, cancel)
            except UnifiedError as exc:
                error = {"type": type(exc).__name__, "message": str(exc)}
                self.engine.complete(record, "failure", error=error, retryable=False)
                return
            outcome = self.executor.run_attempt(task, ctx, task.resolve())
            self._report(
                record,
                outcome.state,
                result=outcome.result,
                error=outcome.error,
                exception=outcome.exception,
                logs=outcome.logs,
                metadata=ctx.metadata,
            )
        except Exception:
            log.exception("worker %s failed while running task %s", self.worker_id, record.id)
            self._report(record, "failure", error={"type": "WorkerError", "message": "see the worker log"})
        finally:
            self._held.pop(record.id, None)

    def _report(self, record: TaskRecord, state: str, **outcome: Any) -> None:
        """Hand an outcome to the engine, retrying while the store is unreachable so no finished result is lost.

        If the lease lapses meanwhile, another worker may take the task over; the fencing token then makes the
        engine refuse this late report, so the result is never written twice.
        """
        failures = 0
        while True:
            try:
                self.engine.complete(record, state, **outcome)
                return
            except StoreError as exc:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
                log.error("worker %s cannot report task %s (%s); retrying in %.1f s", self.worker_id, record.id,
                          exc, delay)  # fmt: skip
                if self._stopping.wait(delay) and failures > 3:
                    log.error("worker %s gives up reporting task %s; its lease will expire", self.worker_id, record.id)
                    return

    def heartbeat(self) -> None:
        """Renew held leases, stop attempts whose lease was lost, and take back expired leases of others."""
        held = dict(self._held)
        if held:
            kept = set(self.engine.extend_leases(self.worker_id, held, self.lease_seconds))
            for task_id in held.keys() - kept:
                log.warning("worker %s lost the lease of task %s; stopping its attempt", self.worker_id, task_id)
                self.engine.cancel_event(task_id).set()
        self.engine.expire_leases()

    def _heartbeat_loop(self) -> None:
        next_beat = last_renewed = time.monotonic()
        while not self._stopping.wait(max(0.0, next_beat - time.monotonic())):
            next_beat += self.heartbeat_seconds
            try:
                self.heartbeat()
                last_renewed = time.monotonic()
            except UnifiedError as exc:
                log.error("worker %s heartbeat failed (%s); retrying", self.worker_id, exc)
                if time.monotonic() - last_renewed >= self.lease_seconds:
                    self._abandon_held("its leases could not be renewed for a whole lease period")

    def _abandon_held(self, why: str) -> None:
        """Stop every attempt this pool holds: another worker may already be running them."""
        for task_id in list(self._held):
            log.error("worker %s stops task %s: %s", self.worker_id, task_id, why)
            self.engine.cancel_event(task_id).set()
