"""Interventions in the life of tasks: cancel, manual retry, queue limits, and taking work back from workers
(expired leases, hand-back on shutdown) and from dead holders of in-process functions. A mixin of
:class:`unified.engine.Engine`, whose state writer and helpers it uses; split out so that engine.py keeps the normal
path (submit, claim, complete).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from unified import events as ev
from unified.errors import ConflictError, ValidationError
from unified.functions import FunctionRegistry
from unified.store.base import Store
from unified.store.records import UNFINISHED_STATES, RunRecord, TaskRecord
from unified.task import BAD_STATES, FINISHED_STATES, RETRYABLE_STATES, CancelSignal, TaskState
from unified.utils import Clock, chunks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from contextlib import AbstractContextManager

log = logging.getLogger("unified.engine")

S = TaskState
HELD_GONE = (
    "canceled: it runs a lambda, closure or function of __main__ that only the process that queued it held, and that "
    "process shut down (define the function at module level so that any worker can run it)"
)
HELD_BY_THE_DEAD = (
    "canceled: it runs a lambda, closure or function of __main__ that only the process that queued it held ({}), "
    "and that process stopped proving it is alive (killed, out of memory, a restarted kernel, or asleep for long): "
    "queue it again from a process that has the function, or register the function by import path "
    "(@unified.task, at module level) so that any worker can run it"
)
# a holder's proof of life lasts this long after each renewal (every heartbeat, 10 s by default): four leases' worth,
# so a long pause of the process (a garbage collection, a laptop asleep for a minute) loses nothing
HOLDER_SECONDS = 120.0
SWEEP_LIMIT = 1000  # held tasks of dead holders canceled by one sweep (it runs in a heartbeat); the rest at the next
SWEEP_CHUNK = 200  # of them canceled per transaction


def retry_blocker(upstream: Iterable[TaskRecord]) -> TaskRecord | None:
    """The first of a task's upstream tasks that failed, timed out, was canceled or skipped: while there is one, the
    task cannot be retried on its own (its run can). None: it can."""
    return next((u for u in upstream if u.state in BAD_STATES), None)


class Interventions:
    """Cancel, retry, queue limits, leases and hand-back; mixed into Engine."""

    store: Store
    clock: Clock
    functions: FunctionRegistry
    _cancel_events: dict[str, CancelSignal]
    _canceled_listeners: list[Callable[[str], None]]
    _holder_until: float | None  # when this engine's proof of life as a holder expires, as last written (None: none)
    if TYPE_CHECKING:
        batch: Callable[[], AbstractContextManager[None]]
        _move: Callable[..., bool]
        _skip_downstream: Callable[[TaskRecord, float], list[tuple[str, TaskRecord]]]
        _settle_run: Callable[[str | None, float], tuple[str, RunRecord] | None]
        _emit: Callable[[str, TaskRecord], None]
        _emit_run: Callable[[str, RunRecord], None]
        _notify_ready: Callable[[int], None]
        _notify_finished: Callable[..., None]
        complete: Callable[..., None]
        after_commit: Callable[[Callable[[], None]], None]

    # -- requests from users -----------------------------------------------------------------------------
    def cancel_held(self) -> int:
        """Cancel the unfinished tasks whose in-process function only this engine holds (it is shutting down): no other
        process can run them, so they would wait for good. Returns how many."""
        held = self.store.held_tasks(self.functions.holder)
        canceled = sum(self.cancel_task(task_id, HELD_GONE) for task_id in held)
        self.store.drop_holder(self.functions.holder)
        self._holder_until = None
        return canceled

    def cancel_task(self, task_id: str, reason: str = "canceled by request") -> bool:
        """Cancel a task that has not finished; False if it already had."""
        for _ in range(10):  # the task may move under us (claimed, finished); look again
            record = self.store.get_task(task_id)
            if record.state in FINISHED_STATES:
                return False
            now = self.clock.now()
            running = record.state == "running"
            with self.batch():
                if not self._move(
                    record,
                    S.CANCELED,
                    finished_at=now,
                    reason=reason,
                    lease_owner=None,
                    lease_expires_at=None,
                ):
                    continue
                if running:  # its attempt ends now, whenever its code returns (a thread cannot be stopped)
                    error = {"type": "Canceled", "message": f"{reason} while running"}
                    self.store.finish_attempt(record.id, record.attempts, if_running=True, state="canceled",
                                              finished_at=now, error=error)  # fmt: skip
                skipped = self._skip_downstream(record, now)
                run_event = self._settle_run(record.run_id, now)
            if record.id in self._cancel_events:
                self._cancel_events[record.id].set()
                for listener in self._canceled_listeners:
                    listener(record.id)
            for name, rec in [(ev.TASK_CANCELED, record), *skipped]:
                self._emit(name, rec)
            if run_event:
                self._emit_run(*run_event)
            self._notify_finished(run_ended=run_event is not None)
            return True
        raise ConflictError(f"task {task_id!r} kept changing state while being canceled; try again")

    def cancel_run(self, run_id: str) -> int:
        """Cancel every unfinished task of a run; returns how many were canceled (a ConflictError once it ended)."""
        run = self.store.get_run(run_id)
        if run.state != "running":
            raise ConflictError(f"run {run_id!r} already ended {run.state}; only running runs can be canceled")
        # newest first: a task's dependants were added after it, so they are canceled rather than skipped
        tasks = reversed(self.store.run_tasks(run_id))
        return sum(self.cancel_task(r.id) for r in tasks if r.state in UNFINISHED_STATES)

    def retry_task(self, task_id: str) -> None:
        """Run a task that ended in failure, timeout, canceled or skipped again, with a fresh retry budget."""
        record = self.store.get_task(task_id)
        if record.state not in RETRYABLE_STATES:
            raise ConflictError(
                f"task {record.task_id!r} is {record.state}; only failed, timed-out, canceled or skipped tasks retry"
            )
        upstream = self.store.get_tasks(record.dependencies)
        if (first := retry_blocker(upstream)) is not None:
            raise ConflictError(
                f"task {record.task_id!r} waits on {first.task_id!r}, which is {first.state}: "
                "retry that one (or the whole run) first"
            )
        self._reset([record], ready={record.id} if all(u.state == "success" for u in upstream) else set())

    def retry_run(self, run_id: str) -> int:
        """Run the failed, timed-out and canceled tasks of a run again, and what they skipped; returns how many."""
        self.store.get_run(run_id)
        tasks = [r for r in self.store.run_tasks(run_id) if r.state in ("failure", "timeout", "canceled")]
        if not tasks:
            raise ConflictError(f"run {run_id!r} has nothing to retry: no task failed, timed out or was canceled")
        states = {r.id: r.state for r in self.store.run_tasks(run_id)}
        ready = {r.id for r in tasks if all(states.get(d) == "success" for d in r.dependencies)}
        return self._reset(tasks, ready)

    def _reset(self, records: list[TaskRecord], ready: set[str]) -> int:
        now = self.clock.now()
        with self.batch():
            to_reset = {r.id: r for r in records}
            stack = list(records)
            while stack:  # what these tasks skipped comes back as pending
                for dependant in self.store.dependants(stack.pop().id):
                    if dependant.state == "skipped" and dependant.id not in to_reset:
                        to_reset[dependant.id] = dependant
                        stack.append(dependant)
            for record in to_reset.values():
                spec = {**record.spec, "retry_base": record.attempts}
                new = S.QUEUED if record.id in ready else S.PENDING
                if not self._move(
                    record,
                    new,
                    record.attempts,  # not only the state: ended, retried and ended again is a change too
                    spec=spec,
                    error=None,
                    result=None,
                    finished_at=None,
                    reason=None,
                    not_before=None,
                    queued_at=now if new is S.QUEUED else None,
                ):
                    raise ConflictError(f"task {record.task_id!r} changed state during the retry; try again")
            for run_id in {r.run_id for r in to_reset.values() if r.run_id}:
                self.store.update_run(run_id, None, state="running", finished_at=None)
        self._notify_ready(len(ready))
        return len(to_reset)

    def set_queue_limit(self, queue: str, max_running: int | None) -> None:
        """Let at most ``max_running`` tasks of ``queue`` run at once across the store's workers (None: no limit)."""
        if not queue or not (max_running is None or (type(max_running) is int and 0 <= max_running <= 2**31 - 1)):
            raise ValidationError(
                f"a queue limit is a queue name and a whole number from 0 to 2**31 - 1 or None, not {max_running!r}"
            )
        self.store.set_queue_limit(queue, max_running)
        self._notify_ready(1)  # a raised limit may make waiting tasks claimable

    # -- leases ------------------------------------------------------------------------------------------
    def extend_leases(self, worker: str, leases: dict[str, int], lease_seconds: float) -> list[str]:
        """Renew the leases ``worker`` holds; returns the task ids it still owns."""
        return self.store.extend_leases(worker, leases, self.clock.now() + lease_seconds)

    def expire_leases(self) -> int:
        """Take back tasks whose worker stopped renewing its lease; each lost attempt counts as a failure."""
        expired = self.store.expired_leases(self.clock.now())
        for record in expired:
            error = {
                "type": "LeaseExpired",
                "message": f"worker {record.lease_owner} stopped renewing its lease; the attempt is presumed lost",
            }
            log.warning("task %s: lease of %s expired; attempt %d lost", record.id, record.lease_owner, record.attempts)
            self.complete(record, "failure", error=error, attempt_state="lost")
        return len(expired)

    # -- holders of in-process functions ------------------------------------------------------------------
    def renew_holder(self, seconds: float = HOLDER_SECONDS) -> None:
        """Prove in the store that this engine is alive for ``seconds`` more, while it holds the in-process function of
        any stored task (nothing to do otherwise). A worker pool's heartbeat calls it; whoever drives an engine
        without one must, or other engines take it for dead once the proof expires (see :meth:`expire_holders`)."""
        if self._holder_until is not None:
            self._prove_alive(self.clock.now(), seconds)

    def _prove_alive(self, now: float, seconds: float = HOLDER_SECONDS) -> None:
        """Write this engine's proof of life as a holder (in the caller's transaction, if any), and say so if another
        engine presumed it dead meanwhile."""
        holder, until = self.functions.holder, now + seconds
        if not self.store.renew_holder(holder, until) and self._holder_until is not None:
            log.error(
                "this process (holder %s) did not prove it was alive in time (its proof lapsed %.0f s ago: a long "
                "pause, or asleep?); another engine presumed it dead and canceled the tasks it held that were not "
                "running. Queue them again; tasks queued from now on are held as before",
                holder, now - self._holder_until,
            )  # fmt: skip
        self.after_commit(functools.partial(setattr, self, "_holder_until", until))

    def _holding(self, now: float) -> None:
        """A submit stores tasks this engine holds: prove it alive in that transaction if its proof is not fresh (the
        first such submit, or without a heartbeat renewing it), so that no held task is ever stored without one."""
        until = self._holder_until
        if until is None or until - now < HOLDER_SECONDS / 2:
            self._prove_alive(now)

    def expire_holders(self) -> int:
        """Cancel the tasks that engines whose proof of life expired held and that are not running (their process
        died without shutting down, and nothing else can run them), saying why; returns how many. Running ones are
        left to their leases: once lost they retry, and the next sweep cancels them. A holder's proof is deleted
        once nothing it held is unfinished; one that renews meanwhile learns that it was presumed dead."""
        now, canceled = self.clock.now(), 0
        for holder in self.store.expired_holders(now):
            if holder == self.functions.holder or not self.store.sweep_holder(holder, now):
                continue  # alive: this engine (it renews before it sweeps), or renewed since it was listed
            held = self.store.held_tasks(holder)
            budget = max(0, SWEEP_LIMIT - canceled)
            records = self.store.get_tasks(held[:budget])
            # newest first, as cancel_run: a task's dependants were added after it, so they are canceled, saying why
            waiting = [r for r in reversed(records) if r.state != "running"]
            reason, before = HELD_BY_THE_DEAD.format(holder), canceled
            for chunk in chunks(waiting, SWEEP_CHUNK):
                with self.batch():  # one commit for the chunk; each cancel skips its dependants and settles its run
                    canceled += sum(self.cancel_task(r.id, reason) for r in chunk)
            if canceled > before:
                log.warning("holder %s stopped proving it is alive: canceled %d task(s) it held", holder,
                            canceled - before)  # fmt: skip
            if len(held) <= budget and len(waiting) == len(records):
                self.store.drop_holder(holder, only_swept=True)
        return canceled

    def hand_back(
        self, task_id: str, attempt: int, why: str = "the worker shut down before the attempt finished"
    ) -> bool:
        """Put a running task back in the queue because its worker lets go of it (``why``); the attempt costs no
        retry."""
        now = self.clock.now()
        record = self.store.get_task(task_id)
        if record.state != "running" or record.attempts != attempt:
            return False
        spec = {**record.spec, "retry_base": record.spec.get("retry_base", 0) + 1}
        with self.batch():
            if not self._move(record, S.QUEUED, attempt, spec=spec, queued_at=now, lease_owner=None,
                              lease_expires_at=None):  # fmt: skip
                return False
            error = {"type": "HandedBack", "message": why}
            self.store.finish_attempt(task_id, attempt, state="handed_back", finished_at=now, error=error)
        self._notify_ready(1)
        return True
