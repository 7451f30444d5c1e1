"""The seed's Python facade for single tasks: queue, wait, inspect, cancel and retry them.

task_manager = TaskManager()
task_id = task_manager.queue_task(func=lambda: "Hello, World!", timeout=10, max_retries=3)
metadata = task_manager.get_task_metadata(task_id)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from typing import Any

from unified import config
from unified.alerts import AlertService, Channel
from unified.engine import Engine
from unified.errors import ConflictError, StoreError, TaskFailedError, TimeoutExpired, ValidationError, not_found
from unified.events import EventBus
from unified.executor import Executor
from unified.scheduler import Scheduler, When
from unified.store import Store, open_store
from unified.store.records import AlertRecord, AttemptRecord, TaskRecord
from unified.task import FINISHED_STATES, Task, TaskState, check_number, check_state_filter
from unified.utils import Clock, FakeClock, iso, new_id
from unified.worker import WorkerPool
from unified.worker_leases import HolderHeartbeat

log = logging.getLogger("unified.task_manager")

WAIT_CHUNK = 500  # tasks read at once by wait_all
# queue_task's options as left unset: given with a ready Task, a value other than these would be ignored
_QUEUE_DEFAULTS: dict[str, Any] = {
    "command": None, "args": (), "kwargs": None, "name": None, "task_id": None, "timeout": None, "max_retries": 0,
    "retry_delay_seconds": 0, "backoff_factor": 2.0, "priority": 0, "dependencies": (), "metadata": None,
    "isolation": "thread",
}  # fmt: skip


def task_metadata(record: TaskRecord, attempts: list[AttemptRecord]) -> dict[str, Any]:
    """The JSON-ready metadata dict of a task and its attempt history."""
    duration = record.finished_at - record.started_at if record.finished_at and record.started_at is not None else None
    error = {"type": record.error.get("type"), "message": record.error.get("message")} if record.error else None
    return {
        "task_id": record.task_id,
        "id": record.id,
        "name": record.name,
        "run_id": record.run_id,
        "state": record.state,
        "priority": record.priority,
        "queue": record.queue,
        "attempts": record.attempts,
        "max_retries": record.spec.get("max_retries", 0),
        "timeout": record.spec.get("timeout"),
        "dependencies": list(record.spec.get("dependencies", ())),
        "created_at": iso(record.created_at),
        "queued_at": iso(record.queued_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "next_attempt_at": iso(record.not_before) if record.state == "retrying" else None,  # its backoff ends then
        "duration_seconds": duration,
        "result": record.result,
        "error": error,
        "reason": record.reason,
        "metadata": dict(record.metadata),
        "history": [
            {
                "attempt": a.number,
                "state": a.state,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "duration_seconds": a.finished_at - a.started_at if a.finished_at is not None else None,
                "error": {"type": a.error.get("type"), "message": a.error.get("message")} if a.error else None,
                "traceback": a.error.get("traceback") if a.error else None,
                "worker": a.worker,
            }
            for a in attempts
        ],
    }


def tasks_metadata(store: Store, records: list[TaskRecord]) -> list[dict[str, Any]]:
    """:func:`task_metadata` of each of ``records``, their attempts read in one query rather than one per task."""
    attempts = store.attempts_of(r.id for r in records)
    return [task_metadata(r, attempts.get(r.id, [])) for r in records]


class ScheduleMethods:
    """The schedule and alert methods TaskManager and WorkflowManager share (they delegate to the services)."""

    scheduler: Scheduler
    alerts: AlertService

    def _check_open(self) -> None:
        """Raise ConflictError if the manager was shut down (each manager says how it knows)."""
        raise NotImplementedError

    def pause_schedule(self, schedule_id: str) -> None:
        """Stop firing a schedule until :meth:`resume_schedule`."""
        self.scheduler.pause(schedule_id)

    def resume_schedule(self, schedule_id: str) -> None:
        """Fire a paused schedule again; fire times missed while paused run only if its catchup is on."""
        self.scheduler.resume(schedule_id)

    def remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; what it started stays in the history."""
        self.scheduler.remove(schedule_id)

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        """A schedule as a dict: timing, target, paused, ``next_fire_time`` and ``last_fire``."""
        return self.scheduler.describe(schedule_id)

    def list_schedules(self) -> list[dict[str, Any]]:
        """Every schedule as a dict (see :meth:`get_schedule`), oldest first."""
        return self.scheduler.describe_all()

    def next_fire_times(self, schedule_id: str, n: int = 5) -> list[datetime]:
        """The next ``n`` fire times (from now, or from start_at when later) as aware datetimes in its zone."""
        return self.scheduler.next_fire_times(schedule_id, n)

    def backfill(
        self, schedule_id: str, start: datetime | float | str, end: datetime | float | str
    ) -> list[dict[str, Any]]:
        """Run the schedule's fire times in ``[start, end]`` that never fired; one dict per fire started."""
        self._check_open()
        return [
            {"fire_time": iso(f.fire_time), "state": f.state, "run_id": f.run_id, "task_id": f.task_id,
             "reason": f.reason}
            for f in self.scheduler.backfill(schedule_id, start, end)
        ]  # fmt: skip

    def add_alert_rule(
        self,
        events: Iterable[str] | str,
        channel: Channel | dict[str, Any],
        workflow: str | None = None,
        task_name: str | None = None,
    ) -> str:
        """Send the named events (optionally of one workflow or task name) to ``channel``; returns the rule id."""
        return self.alerts.add_rule(events, channel, workflow, task_name)

    def remove_alert_rule(self, rule_id: str) -> None:
        """Delete an alert rule."""
        self.alerts.remove_rule(rule_id)

    def list_alert_rules(self) -> list[dict[str, Any]]:
        """Every alert rule with its channel config."""
        return self.alerts.list_rules()

    def list_alerts(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        """Alerts raised, newest first, each with its delivery status (sent, failed, pending), attempts and error;
        only those of ``status`` when given."""
        return self.alerts.list_alerts(limit, status)


class TaskManager(ScheduleMethods):
    """Queues tasks on a store and runs them on a pool of worker threads in this process.

    ``store`` is a URL (``memory://``, ``sqlite:///path.db``, ``postgresql://...``) or a store object; unset,
    it reads ``UNIFIED_DATABASE_URL``, else memory. ``max_workers=0`` only queues: other processes run the work.
    ``run_scheduler`` fires due schedules while the manager is alive: from a background thread on the real
    clock, and on every ``advance`` (plus in :meth:`run_until_idle`) of a :class:`FakeClock`, without threads.
    ``allow_shell=False`` fails the attempts of shell-command tasks without running them (a server's setting).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        max_workers: int | None = None,
        clock: Clock | None = None,
        *,
        queues: Iterable[str] | None = None,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 10.0,
        engine: Engine | None = None,
        run_scheduler: bool = True,
        allow_shell: bool = True,
    ) -> None:
        self._owns_store = engine is None and not (store is not None and not isinstance(store, str))
        self.engine = engine or Engine(
            open_store(config.database_url(store) if isinstance(store, str) or store is None else store),
            clock,
            EventBus(),
        )
        self.store = self.engine.store
        self.clock = self.engine.clock
        self.allow_shell = allow_shell
        self._shut_down = False
        workers = config.default_max_workers() if max_workers is None else max_workers
        self.pool: WorkerPool | None = None
        if workers > 0:
            executor = Executor(self.clock, allow_shell)
            self.pool = WorkerPool(self.engine, executor, workers, queues, lease_seconds, heartbeat_seconds)
            self.pool.start()
        fake_time = isinstance(self.clock, FakeClock)
        # the proof of life of the tasks this process holds (lambdas): a pool's heartbeat renews it, else a thread
        # of its own, or each advance of a fake clock (whose tests run no threads)
        self._holder_heartbeat: HolderHeartbeat | None = None
        if fake_time:
            self.clock.on_advance(self.engine.renew_holder)
        elif self.pool is None:
            self._holder_heartbeat = HolderHeartbeat(self.engine, heartbeat_seconds)
        self.scheduler = Scheduler(self.engine)
        self.alerts = AlertService(self.engine, threaded=not fake_time)
        self.run_scheduler = run_scheduler
        if run_scheduler and fake_time:
            self.clock.on_advance(self._fire_due_schedules)
        elif run_scheduler:
            self.scheduler.start()

    def _fire_due_schedules(self) -> None:
        if self.run_scheduler:
            self.scheduler.run_once()

    # -- queueing ----------------------------------------------------------------------------------------
    def queue_task(
        self,
        func: Callable[..., Any] | str | Task | None = None,
        *,
        command: str | list[str] | None = None,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        task_id: str | None = None,
        timeout: float | None = None,
        max_retries: int = 0,
        retry_delay_seconds: float = 0,
        backoff_factor: float = 2.0,
        priority: int = 0,
        dependencies: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
        isolation: str = "thread",
        **options: Any,
    ) -> str:
        """Queue a task (a callable, an import path, a shell ``command`` or a ready :class:`Task`); returns its id.

        ``options`` takes the other Task options: ``jitter``, ``retry_on``, ``max_retry_delay_seconds``, ``queue``.
        """
        self._check_open()
        if isinstance(func, Task):
            given = {"command": command, "args": args, "kwargs": kwargs, "name": name, "task_id": task_id,
                     "timeout": timeout, "max_retries": max_retries, "retry_delay_seconds": retry_delay_seconds,
                     "backoff_factor": backoff_factor, "priority": priority, "dependencies": dependencies,
                     "metadata": metadata, "isolation": isolation, **options}  # fmt: skip
            if ignored := sorted(k for k, v in given.items() if k not in _QUEUE_DEFAULTS or v != _QUEUE_DEFAULTS[k]):
                raise ValidationError(
                    f"queue_task got a Task and also {', '.join(ignored)}: set those on the Task itself"
                )
            return self.engine.submit([func])[0]
        task = Task(
            task_id=task_id, func=func, command=command, args=args, kwargs=kwargs, name=name,
            dependencies=dependencies, timeout=timeout, max_retries=max_retries,
            retry_delay_seconds=retry_delay_seconds, backoff_factor=backoff_factor, priority=priority,
            metadata=metadata, isolation=isolation, **options,
        )  # fmt: skip
        return self.engine.submit([task])[0]

    def batch(self) -> AbstractContextManager[None]:
        """One transaction for every ``queue_task`` (and other change) made inside the block.

        Queueing many tasks this way costs one commit instead of one each: the ids returned inside are durable, and
        the tasks claimable, once the block exits; an exception inside stores none of them (on SQL stores). On
        SQLite the block holds this process's write turn, so keep it to queueing; on PostgreSQL a block idle for 10
        minutes between its calls is ended by the server (a StoreError: see docs/deployment.md).
        """
        return self.engine.batch()

    def schedule_task(
        self,
        func: Callable[..., Any] | str | Task | None = None,
        *,
        command: str | list[str] | None = None,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str = "UTC",
        start_at: datetime | float | str | None = None,
        end_at: datetime | float | str | None = None,
        catchup: bool = False,
        max_active_runs: int = 1,
        name: str | None = None,
        **task_options: Any,
    ) -> str:
        """Queue a fresh copy of a task on a cron expression or every ``interval_seconds``; returns the schedule id.

        ``task_options`` are those of :meth:`queue_task` (``timeout``, ``max_retries``, ``sla_seconds``, ...).
        See docs/scheduling.md for time zones, daylight saving, ``catchup`` and ``max_active_runs``.
        """
        self._check_open()
        task = func if isinstance(func, Task) else Task(func=func, command=command, name=name, **task_options)
        when = When(cron, interval_seconds, timezone, start_at, end_at, catchup, max_active_runs)
        return self.scheduler.add_task(task, when, name)

    # -- reading -----------------------------------------------------------------------------------------
    def get_task_metadata(self, task_id: str) -> dict[str, Any]:
        """Everything known about a task: state, attempts, timings, result, error and attempt history."""
        return task_metadata(self.store.get_task(task_id), self.store.list_attempts(task_id))

    def wait(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the task finishes (or raise TimeoutExpired); returns its final metadata."""
        return task_metadata(*self._wait_for_record(task_id, timeout))  # the task and attempts read last

    def wait_all(self, task_ids: Iterable[str], timeout: float | None = None) -> list[dict[str, Any]]:
        """Block until every task finishes (or raise TimeoutExpired); returns their final metadata, in order.

        Reads the store in bulk (a chunk of tasks at a time), so waiting for thousands of tasks costs a few
        queries rather than two per task.
        """
        if isinstance(task_ids, str):
            raise ValidationError("wait_all takes a list of task ids, not one id as a string: use wait(task_id)")
        ids = list(task_ids)
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        records: dict[str, TaskRecord] = {}
        for start in range(0, len(ids), WAIT_CHUNK):
            chunk = ids[start : start + WAIT_CHUNK]
            # the newest first: once it is done the others mostly are too, and one read finds them all
            records[chunk[-1]] = self._wait_for_record(chunk[-1], remaining())[0]
            found = {r.id: r for r in self.store.get_tasks(chunk[:-1])}
            if missing := [i for i in chunk[:-1] if i not in found]:
                raise not_found(f"task {missing[0]!r}")
            for task_id, record in found.items():
                finished = record.state in FINISHED_STATES
                records[task_id] = record if finished else self._wait_for_record(task_id, remaining())[0]
        return tasks_metadata(self.store, [records[i] for i in ids])

    def _wait_for_record(self, task_id: str, timeout: float | None) -> tuple[TaskRecord, list[AttemptRecord]]:
        """The finished task and its attempts (read together), once it finishes."""
        last: list[tuple[TaskRecord, list[AttemptRecord]]] = []

        def finished() -> bool:
            last[:] = [self.store.task_with_attempts(task_id)]
            return last[0][0].state in FINISHED_STATES

        self._wait_until(finished, timeout, f"task {task_id!r}")
        return last[0]

    def _wait_until(self, done: Callable[[], bool], timeout: float | None, what: str, runs: bool = False) -> None:
        """Call ``done`` whenever a task (with ``runs``: a run) finishes here, and at least every poll interval."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # with no local workers the work happens elsewhere: poll the store less eagerly
        poll = 0.2 if self.pool is None else 0.5
        while True:
            seen = self.engine.run_generation if runs else self.engine.finished_generation
            if done():
                return
            self._check_something_runs(what)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutExpired(f"{what} did not finish within {timeout} s; wait longer or cancel it")
            self.engine.wait_for_change(seen, poll if remaining is None else min(poll, remaining), runs)

    def _check_something_runs(self, what: str) -> None:
        """Refuse to wait where nothing can ever finish the work: no runners here and a memory store of our own."""
        if self.pool is None and self._owns_store and self.store.keeps_objects:
            state = "shut down" if self._shut_down else "made with max_workers=0"
            raise ConflictError(
                f"{what} cannot finish: this TaskManager was {state} and its in-memory store is seen by no other"
                " process; run the work with run_until_idle(), or use max_workers >= 1 (or a sqlite:// or"
                " postgresql:// store that workers share)"
            )

    def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        """The task's return value once it succeeds; raises TaskFailedError if it ends any other way."""
        self.wait(task_id, timeout)
        record = self.store.get_task(task_id)
        if record.state == "success":
            return record.result
        error = record.error or {}
        detail = f": {error.get('type')}: {error.get('message')}" if error else f" ({record.reason})"
        raise TaskFailedError(
            f"task {record.task_id!r} ended {record.state}{detail}", task_id=record.id, state=record.state, error=error
        )

    def list_tasks(
        self, state: str | None = None, limit: int = 100, schedule_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Metadata of the newest tasks, optionally only those in ``state`` or fired by one schedule."""
        check_state_filter(state, [s.value for s in TaskState], "task")
        return tasks_metadata(self.store, self.store.list_tasks(state, limit=limit, schedule_id=schedule_id))

    def get_task_logs(self, task_id: str) -> list[dict[str, Any]]:
        """The captured log lines of every attempt: ts, level, message, attempt."""
        self.store.get_task(task_id)
        return [
            {"ts": iso(line.ts), "level": line.level, "message": line.message, "attempt": line.attempt}
            for line in self.store.get_logs(task_id)
        ]

    # -- steering ----------------------------------------------------------------------------------------
    def cancel_task(self, task_id: str) -> bool:
        """Cancel a task that has not finished; False if it already had (nothing changes then)."""
        return self.engine.cancel_task(task_id)

    def retry_task(self, task_id: str) -> None:
        """Run a task that ended in failure, timeout or canceled again, with a fresh retry budget."""
        self._check_open()
        self.engine.retry_task(task_id)

    def set_queue_limit(self, queue: str, max_running: int | None) -> None:
        """Let at most ``max_running`` tasks of ``queue`` run at once on all workers of the store (None: no limit)."""
        self.engine.set_queue_limit(queue, max_running)

    def add_alert_handler(self, fn: Callable[[dict[str, Any]], Any], events: Iterable[str] | None = None) -> None:
        """Call ``fn(alert_dict)`` for the named engine events (all when None); every alert is stored."""
        channel = getattr(fn, "__qualname__", repr(fn))

        def deliver(event: dict[str, Any]) -> None:
            record = AlertRecord(new_id(), event["event"], event, self.clock.now(), channel)
            try:
                fn(event)
            except Exception as exc:
                record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self.store.insert_alert(record)

        self.engine.bus.subscribe(deliver, events)

    def run_until_idle(self) -> int:
        """Fire due schedules (if ``run_scheduler``), then run every task that is ready now in this thread.

        For tests and scripts; returns how many tasks ran.
        """
        self._fire_due_schedules()
        pool = self.pool or WorkerPool(self.engine, Executor(self.clock, self.allow_shell), 0)
        return pool.run_until_idle()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Stop the scheduler and the workers, send queued alerts (for up to 5 s), and close the store if we opened it.

        With ``wait``, running attempts get ``timeout`` seconds to finish (None: as long as they take); what still runs
        then is handed back (queued again, for another worker) and told to stop. Without ``wait`` that happens at once.
        Afterwards the manager takes no new work: queueing, scheduling or retrying raises ConflictError.
        """
        if timeout is not None:
            check_number("timeout", timeout)
        self._shut_down = True
        self.run_scheduler = False
        self.scheduler.stop()
        if self.pool is not None:
            self.pool.stop(wait=wait, timeout=timeout)
            self.pool = None
        if self._holder_heartbeat is not None:
            self._holder_heartbeat.stop()
        with suppress(StoreError):  # unreachable now: they stay queued until their holder's proof expires
            self.engine.cancel_held()
        self.alerts.close()
        if self._owns_store:
            self.store.close()

    def _check_open(self) -> None:
        """Raise ConflictError once :meth:`shutdown` ran: no worker or scheduler of this manager would run new work."""
        if self._shut_down:
            raise ConflictError(
                "this TaskManager was shut down and runs nothing more: create a new TaskManager (or WorkflowManager)"
            )

    def __enter__(self) -> TaskManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
