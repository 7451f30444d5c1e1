"""The engine: the only writer of task and run states.

It turns Task specs into stored task instances, hands ready ones to workers (claim), and applies the outcome
of each attempt: success releases dependants, failure retries with backoff or ends the task and skips what
depends on it, and the last task of a run settles the run. Every change goes through :meth:`Engine._move`,
which checks the transition table of ``unified.task`` and writes with a compare-and-set.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from unified import events as ev
from unified.engine_batch import Batch
from unified.engine_events import EngineEvents
from unified.engine_submit import CONFLICT_RETRIES, Submitting
from unified.errors import ConflictError, StoreConflict, StoreError
from unified.events import EventBus
from unified.functions import FunctionRegistry
from unified.interventions import Interventions
from unified.outcome_plan import PlannedOutcome
from unified.store.base import Store
from unified.store.records import (
    UNFINISHED_STATES,
    AttemptEnd,
    Dependant,
    LogRecord,
    RunRecord,
    TaskMove,
    TaskRecord,
)
from unified.task import (
    FINISHED_STATES,
    CancelFlag,
    CancelSignal,
    Task,
    TaskContext,
    TaskState,
    check_transition,
)
from unified.task_records import global_id, upstream_results
from unified.utils import Clock, SystemClock, copy_data

log = logging.getLogger("unified.engine")
_JOINED = nullcontext()  # Engine.batch inside an open batch: the outermost one's transaction is already this block's

# ctx.add_task's tries while the store is away: waits of 0.25, 0.5, ... 5 s, about 20 s in all (a lease's worth)
ADD_TASK_STORE_RETRIES = 7
MAX_HANDOFF = 10_000  # upstream results kept for claimed attempts not yet started (see Engine._keep_handoff)

S = TaskState
_ID = operator.attrgetter("id")


class Engine(Submitting, Interventions, EngineEvents):
    """Applies every state change of tasks and runs to a store, and publishes events about them."""

    def __init__(self, store: Store, clock: Clock | None = None, bus: EventBus | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.bus = bus or EventBus()
        self.functions = FunctionRegistry()
        self._cancel_events: dict[str, CancelSignal] = {}  # attempts running in this process
        # the attempt number each was claimed as and when (their events say how long it ran)
        self._attempt_started: dict[str, tuple[int, float]] = {}
        self._ready_listeners: list[Callable[[int], None]] = []
        self._submit_listeners: list[Callable[[list[TaskRecord], RunRecord | None], None]] = []
        self._claimable_listeners: list[Callable[[int], None]] = []
        self._canceled_listeners: list[Callable[[str], None]] = []
        self._queueing_listeners: list[Callable[[bool], None]] = []
        finished = self._finished_lock = threading.Lock()  # taken as is where no Condition method is called
        self._finished = threading.Condition(finished)  # a task finished
        # a run finished: its own waiters (wait_run) sleep through the task ends of the run, one per chain step
        self._run_finished = threading.Condition(finished)
        self.finished_generation = 0  # bumped whenever a task or run finishes in this process
        self.run_generation = 0  # bumped whenever a run finishes in this process
        self._waiting = [0, 0]  # threads in wait_for_change for a task, for a run (notified only if some wait)
        self._run_cache: dict[str, RunRecord] = {}
        # upstream results of tasks released and claimed in one transaction, by (task id, attempt): the attempt
        # starts without reading them back (see claim)
        self._handoff: dict[tuple[str, int], dict[str, Any]] = {}
        self._local = threading.local()  # per thread: transaction depth and after-commit callbacks
        self._holder_until: float | None = None  # see Interventions.renew_holder

    # -- transactions ------------------------------------------------------------------------------------
    def batch(self, savepoint: bool = False) -> AbstractContextManager[None]:
        """One store transaction for everything inside; wake-ups and events wait until it commits.

        Nested blocks join the outermost one. Waking a worker or a waiter before the commit would let it read
        the old state, so every notification is deferred to after the outermost commit. ``savepoint``: a nested
        block that raises undoes its own writes and what it left for the commit, and the transaction goes on.
        """
        if savepoint:
            return Batch(self._local, self.store.savepoint(), self._before_commit, savepoint=True)
        if getattr(self._local, "depth", 0):
            return _JOINED  # a plain nested block has nothing to set up or undo (a report's complete_all, each task)
        return Batch(self._local, self.store.atomic(), self._before_commit)

    def _before_commit(self) -> None:
        """Just before a batch commits: let the claimable listeners claim what it queued, once for the lot, then
        queue the released tasks nobody claimed, and announce the ready tasks it did not claim itself."""
        local = self._local
        queued, local.claimable = local.claimable, 0
        if queued:  # first: a listener may apply outcomes too (see on_queueing), releasing tasks it may not claim
            for claim in self._claimable_listeners:
                claim(queued)
        if local.releasing:  # released and not claimed by this transaction: queued now
            moves = [(task_id, "pending", None, {"state": S.QUEUED.value, "queued_at": local.released_at})
                     for task_id in local.releasing]  # fmt: skip
            local.releasing = []
            self.store.update_tasks(moves)
        # tasks this transaction made ready and claimed itself need no wake-up: netted here, per transaction, so a
        # claim never cancels a wake-up another transaction already delivered
        if (unclaimed := local.ready - local.taken) > 0:
            local.after.append(lambda: self._tell_ready(unclaimed))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the current batch commits (at once outside a batch); dropped if it rolls back."""
        if getattr(self._local, "depth", 0):
            self._local.after.append(callback)
        else:
            callback()

    # -- listeners ---------------------------------------------------------------------------------------
    def on_canceled(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(task_id)`` when a task whose attempt runs in this process is canceled (after the commit)."""
        self._canceled_listeners.append(listener)

    def on_ready(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(n)`` when n tasks become ready to claim in this process."""
        self._ready_listeners.append(listener)

    def on_claimable(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(n)`` inside the transaction that queues n claimable tasks in this process, just before it
        commits and once however many submits it holds, so a local worker pool can claim them in that same
        transaction (handing them to its runners with ``after_commit``)."""
        self._claimable_listeners.append(listener)

    def on_queueing(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` as this thread begins a transaction of its own that queues tasks and will call the
        claimable listeners before it commits, and ``listener(False)`` once that transaction ended, committed or not.
        A local worker pool's runners leave their outcomes to such a transaction meanwhile, to share its commit."""
        self._queueing_listeners.append(listener)

    def on_submitted(self, listener: Callable[[list[TaskRecord], RunRecord | None], None]) -> None:
        """Call ``listener(records, run)`` with the tasks each submit stores (and their run, if any)."""
        self._submit_listeners.append(listener)

    def _notify_ready(self, count: int) -> None:
        if getattr(self._local, "depth", 0):
            self._local.ready += count  # told at commit, less what the transaction claimed (see _before_commit)
        elif count:
            self._tell_ready(count)

    def _tell_ready(self, count: int) -> None:
        for listener in self._ready_listeners:
            listener(count)

    def _notify_finished(self, run_ended: bool = False) -> None:
        # a partial: no Python frame of its own per task
        self.after_commit(functools.partial(self._bump_finished, run_ended))

    def _bump_finished(self, run_ended: bool) -> None:
        with self._finished_lock:  # the conditions' own lock: their __enter__ is Python code, once per task
            self.finished_generation += 1
            waiting = self._waiting
            if waiting[0]:
                self._finished.notify_all()
            if run_ended:
                self.run_generation += 1
                if waiting[1]:
                    self._run_finished.notify_all()

    def wait_for_change(self, seen_generation: int, seconds: float, runs: bool = False) -> None:
        """Block until a task (with ``runs``: a run) finishes in this process after ``seen_generation`` (of
        ``finished_generation``, or of ``run_generation`` with ``runs``) was read, or ``seconds`` pass."""
        with self._finished:
            self._waiting[runs] += 1
            try:
                (self._run_finished if runs else self._finished).wait_for(
                    lambda: (self.run_generation if runs else self.finished_generation) != seen_generation, seconds
                )
            finally:
                self._waiting[runs] -= 1

    # -- the one state writer ----------------------------------------------------------------------------
    def _move(self, record: TaskRecord, new: TaskState, expected_attempt: int | None = None, **changes: Any) -> bool:
        """Move ``record`` to ``new`` if allowed and nobody moved it first; updates ``record`` on success."""
        check_transition(record.state, new)
        if not self.store.update_task(record.id, record.state, expected_attempt, state=new.value, **changes):
            return False
        log.debug("task %s: %s -> %s", record.id, record.state, new.value)  # per task: DEBUG, off the hot path
        record.state = new.value
        for name, value in changes.items():
            setattr(record, name, value)
        if record.state in FINISHED_STATES:  # canceled or skipped: its kept Task (see FunctionRegistry) will not run
            self.functions.drop(record.id)
        return True

    # -- claiming and running ----------------------------------------------------------------------------
    def claim(
        self, worker: str, limit: int = 1, queues: Iterable[str] | None = None, lease_seconds: float = 30.0
    ) -> list[TaskRecord]:
        """Take up to ``limit`` ready tasks for ``worker`` and record the start of their attempts."""
        # the claim is one store transaction of its own (one statement on PostgreSQL when no limit applies)
        now, local, holder = self.clock.now(), self._local, self.functions.claiming_holder
        released: dict[str, dict[str, Any]] = {}
        if getattr(local, "depth", 0):  # inside a report's transaction: it may have released some of them
            # still pending: the claim may take them straight from there (see _release_dependants)
            releasing = local.releasing
            claimed = self.store.claim_tasks(worker, now, lease_seconds, limit, queues, releasing, holder)
            if releasing:  # in C, without a comprehension's frame: once per chain step
                local.releasing = list(itertools.filterfalse(set(map(_ID, claimed)).__contains__, releasing))
            local.taken += len(claimed)
            released = local.released
        else:
            claimed = self.store.claim_tasks(worker, now, lease_seconds, limit, queues, holder=holder)
        debug = log.isEnabledFor(logging.DEBUG)  # asked once per claim, not once per task
        handoff: dict[tuple[str, int], dict[str, Any]] = {}
        for record in claimed:
            if debug:
                log.debug("task %s: claimed by %s (attempt %d)", record.id, worker, record.attempts)
            if (earlier := self._cancel_events.get(record.id)) is not None:
                earlier.set()  # an earlier attempt still running here was canceled or lost elsewhere: it must stop
            self._cancel_events[record.id] = CancelFlag()
            self._attempt_started[record.id] = (record.attempts, now)
            if released and record.id in released:  # released by this transaction: see _keep_handoff
                handoff[(record.id, record.attempts)] = released.pop(record.id)
        if handoff:
            self.after_commit(functools.partial(self._keep_handoff, handoff))
        return claimed

    def _keep_handoff(self, handoff: dict[tuple[str, int], dict[str, Any]]) -> None:
        """Once the transaction commits, keep the upstream results its release read for the attempts it claimed.

        The release read them under lock to decide that every upstream task succeeded; a chain step or a fan-in
        claimed in the same transaction (a worker's report) then starts without reading them again. Kept only after
        the commit, so a rolled-back release leaves nothing behind.
        """
        # full only of attempts never prepared here (lost leases): drop them all, which costs each a read at most;
        # clear() is one step, where evicting the oldest would iterate while runner threads pop entries
        if len(self._handoff) >= MAX_HANDOFF:
            self._handoff.clear()
        self._handoff.update(handoff)

    def prepare(self, record: TaskRecord, cancel_event: CancelSignal) -> tuple[Task, TaskContext]:
        """The runnable Task of a claimed record and the context its function sees."""
        task = self.functions.rebuild(record.spec, keep_as=record.id if self.store.keeps_objects else None)
        run = self._run(record.run_id) if record.run_id is not None else None  # no call for a lone task
        upstream = self._handoff.pop((record.id, record.attempts), None)
        if upstream is None:
            deps = record.dependencies
            upstream = upstream_results(deps, self.store.get_tasks(deps)) if deps else {}
        ctx = TaskContext(
            task_id=record.task_id,
            run_id=record.run_id,
            attempt=record.attempts,
            params=copy_data(run.params) if run and run.params else {},  # a task's changes stay its own
            upstream=upstream,
            metadata=dict(record.metadata),
            add_task=functools.partial(self._add_child, parent=record, added=itertools.count(1)),
            cancel_event=cancel_event,
            name=record.name,
        )
        return task, ctx

    def _add_child(self, child: Task, parent: TaskRecord, added: Iterator[int]) -> str:
        """``ctx.add_task``: a child an earlier attempt of the same parent added is not added again (a retried
        parent re-adds its children as it goes), any other task of that id is a DuplicateTaskError. A child without
        an id is named by its parent and its place among those (``<parent>.<n>``, counted per attempt): a retried
        parent adding the same children gets them back too; a name taken by another task is passed over."""
        named = child.task_id is None
        if named:
            child.task_id = f"{parent.task_id}.{next(added)}"
        attempts = unreachable = 0
        while True:  # as a submit of its own runs again after a deadlock, so does this one with its check
            try:
                with self.batch():
                    now = self.store.get_task(parent.id)
                    if now.state != "running" or now.attempts != parent.attempts:
                        raise ConflictError(
                            f"task {parent.task_id!r} cannot add tasks: its attempt {parent.attempts} has ended "
                            f"({now.state} since; canceled, timed out or taken over), so its code should stop "
                            "(see ctx.cancelled)"
                        )
                    while found := self.store.get_tasks([global_id(parent.run_id, child.task_id)]):
                        spec = found[0].spec
                        if spec.get("parent") == parent.id and spec.get("named_by_parent", False) == named:
                            return child.task_id  # an earlier attempt's
                        if not named:
                            break  # the submit says the id is taken
                        child.task_id = f"{parent.task_id}.{next(added)}"
                    self.submit([child], parent.run_id, parent.schedule_id, parent=parent.id, named_by_parent=named)
                return child.task_id
            except StoreConflict:
                attempts += 1
                if attempts >= CONFLICT_RETRIES or getattr(self._local, "depth", 0):  # a caller's, all undone
                    raise
            except StoreError as exc:  # the store away for a moment (a restart, a dropped connection): waited out
                unreachable += 1
                if unreachable > ADD_TASK_STORE_RETRIES or getattr(self._local, "depth", 0):
                    raise
                log.warning("task %s: adding task %s met %s; trying again", parent.id, child.task_id, exc)
                time.sleep(min(5.0, 0.25 * 2 ** (unreachable - 1)))

    def forget_attempt(self, task_id: str, attempt: int | None = None) -> None:
        """Drop what this process keeps about a claimed attempt that its worker gives up without a report (its lease
        lapses, and whoever runs the task next reports it); not if a later ``attempt`` of it was claimed here since."""
        claimed = self._attempt_started.get(task_id)
        if attempt is not None and claimed is not None and claimed[0] != attempt:
            return
        self._cancel_events.pop(task_id, None)
        self._attempt_started.pop(task_id, None)
        self.functions.drop(task_id)

    def cancel_event(self, task_id: str) -> CancelSignal:
        """The signal that tells a claimed attempt running in this process to stop."""
        return self._cancel_events.get(task_id) or self._cancel_events.setdefault(task_id, CancelFlag())

    def _run(self, run_id: str | None) -> RunRecord | None:
        if run_id is None:
            return None
        run = self._run_cache.get(run_id)
        if run is None:
            run = self._run_cache[run_id] = self.store.get_run(run_id)
        return run

    def complete(
        self,
        record: TaskRecord,
        state: str,
        *,
        result: Any = None,
        error: dict[str, Any] | None = None,
        logs: Iterable[tuple[float, str, str]] = (),
        metadata: dict[str, Any] | None = None,
        attempt_state: str | None = None,
        retryable: bool = True,
    ) -> None:
        """Apply the outcome of ``record``'s current attempt (success, failure, timeout or canceled).

        ``retryable``: False for a failure the task does not retry (not in its ``retry_on``, or one a new attempt
        cannot fix); the worker decides it with the Task it ran.
        """
        outcome = {"result": result, "error": error, "logs": logs, "metadata": metadata,
                   "attempt_state": attempt_state, "retryable": retryable}  # fmt: skip
        self.complete_all([(record, state, outcome)])

    def complete_all(self, reports: list[tuple[TaskRecord, str, dict[str, Any]]]) -> None:
        """Apply the outcomes of several attempts in one transaction: each ``(record, state, outcome)``, the outcome
        holding :meth:`complete`'s keyword arguments. The store is called set-wise (one compare-and-set for all,
        one read of all their dependants), so a worker's batch of reports costs a few statements, not a few each."""
        now = self.clock.now()
        keeps = self.store.keeps_objects
        planned = []
        for record, state, outcome in reports:  # a loop, not a comprehension: no frame of its own per chain step
            planned.append(PlannedOutcome.plan(record, state, outcome, now, keeps))
        if getattr(self._local, "depth", 0):  # a worker's report: its transaction's, joined as it is (no frames)
            pending_events, run_events = self._apply_planned(planned, now)
        else:
            with self.batch():
                pending_events, run_events = self._apply_planned(planned, now)
        for p in planned:
            task_id = p.record.id
            claimed = self._attempt_started.get(task_id)
            if claimed is not None and claimed[0] != p.attempt:
                continue  # the late report of an earlier attempt: what is kept here is for the one running now
            if not (p.moved and p.new is S.RETRYING):  # kept only for the next attempt (see FunctionRegistry)
                self.functions.drop(task_id)
                if p.moved and p.new is S.SUCCESS and p.record.holder is not None:
                    self.functions.release(task_id, p.record.spec)
            self._cancel_events.pop(task_id, None)
            if claimed is not None:
                p.started_at = self._attempt_started.pop(task_id)[1]
        self._emit_all(pending_events)
        for run_event in run_events:
            self._emit_run(*run_event)
        self._notify_finished(run_ended=bool(run_events))

    def _apply_planned(
        self, planned: list[PlannedOutcome], now: float
    ) -> tuple[list[tuple[str, TaskRecord, PlannedOutcome | None]], list[tuple[str, RunRecord]]]:
        """complete_all's transaction: the moves, the attempts' ends, the released dependants, logs and settled runs;
        returns the task and run events to publish."""
        pending_events: list[tuple[str, TaskRecord, PlannedOutcome | None]] = []
        run_events: list[tuple[str, RunRecord]] = []
        moving: list[PlannedOutcome] = []
        moves: list[TaskMove] = []
        locking: list[bool] = []  # whether each move's dependants may be released (see _release_dependants)
        ends: list[AttemptEnd] = []  # each attempt ends, moved or not
        for p in planned:  # one loop, not a comprehension per list: called once per chain step
            task_id = p.record.id
            if p.new is not None:
                moving.append(p)
                moves.append((task_id, p.record.state, p.attempt, p.changes))
                locking.append(p.new is S.SUCCESS)
            ends.append((task_id, p.attempt, p.attempt_outcome))
        moved, by_upstream = self.store.apply_outcomes(moves, locking, ends)
        succeeded = []
        debug = log.isEnabledFor(logging.DEBUG)  # asked once per batch, not once per task
        for outcome, ok in zip(moving, moved, strict=True):
            if ok:
                if debug:
                    log.debug("task %s: %s -> %s", outcome.record.id, outcome.record.state, outcome.new)
                outcome.apply()
                if outcome.new is S.SUCCESS:
                    succeeded.append(outcome.record)
        open_ids = self._release_dependants(succeeded, by_upstream, now)
        settle: dict[str, None] = {}
        logs: list[LogRecord] = []
        retried = 0
        for p in planned:
            record = p.record
            if p.moved:  # the task's event ends its attempt; the tasks it skipped have theirs
                if p.new is S.SUCCESS:  # nothing set off: no call
                    pending_events.append((ev.TASK_SUCCEEDED, record, p))
                elif p.new is S.RETRYING:  # announced to workers once for the batch, below
                    retried += 1
                    pending_events.append((ev.TASK_RETRYING, record, p))
                else:
                    event, skipped = self._after_end(p, now)
                    pending_events.append((event, record, p))
                    if skipped:
                        pending_events += [(name, rec, None) for name, rec in skipped]
            if record.run_id and record.state in FINISHED_STATES and record.id not in open_ids:
                settle[record.run_id] = None
            if p.logs:
                logs += [LogRecord(record.id, p.attempt, ts, lvl, msg) for ts, lvl, msg in p.logs]
        if retried:
            self._notify_ready(retried)
        if logs:
            self.store.append_logs(logs)
        for run_id in settle:
            if (run_event := self._settle_run(run_id, now)) is not None:
                run_events.append(run_event)
        return pending_events, run_events

    def _after_end(self, outcome: PlannedOutcome, now: float) -> tuple[str, list[tuple[str, TaskRecord]]]:
        """The event of a task that just ended badly (failed, timed out or canceled), and the tasks it skips
        downstream (their events come second)."""
        record, new = outcome.record, outcome.new
        event = {S.CANCELED: ev.TASK_CANCELED, S.TIMEOUT: ev.TASK_TIMEOUT}.get(new, ev.TASK_FAILED)  # type: ignore[arg-type]
        return event, self._skip_downstream(record, now)

    def _release_dependants(
        self, succeeded: list[TaskRecord], by_upstream: dict[str, list[Dependant]], now: float
    ) -> set[str]:
        """Queue the dependants (``by_upstream``, locked by the store) whose upstream all succeeded; returns the ids of
        the ``succeeded`` tasks that still have an unfinished dependant (their run cannot be settled yet)."""
        # locked before the upstream states are read below: two workers finishing the last two upstream tasks at once
        # (PostgreSQL, READ COMMITTED) would otherwise each see the other's task unfinished and release nothing
        if not succeeded or not by_upstream:  # the common case of independent tasks
            return set()
        unfinished: set[str] = set()
        pending: dict[str, Dependant] = {}
        done = dict(zip(map(_ID, succeeded), succeeded, strict=True))  # just succeeded here (in C: no frame)
        others: set[str] = set()  # the other upstream tasks of those pending, to be read
        for up, found in by_upstream.items():  # one pass: a chain step has one of each
            for dependant in found:
                if dependant.state not in FINISHED_STATES:
                    unfinished.add(up)
                    if dependant.state == "pending" and dependant.id not in pending:
                        pending[dependant.id] = dependant
                        others.update(dependant.dependencies)
        others.difference_update(done)
        upstream_by_id = done
        if others:
            upstream_by_id = {u.id: u for u in self.store.get_tasks(others)}
            upstream_by_id.update(done)
        # not queued here: a claim later in this transaction (a worker's report) takes what it can straight from
        # pending, so each of those is written once; _before_commit queues the rest
        local, released = self._local, 0
        for dependant in pending.values():
            if dependant.id in local.released:  # already released by an earlier batch of this transaction
                continue
            results = {}  # the upstream results it is handed (see upstream_results), gathered as they are checked
            for upstream_id in dependant.dependencies:
                if (upstream := upstream_by_id.get(upstream_id)) is not None:
                    if upstream.state != "success":
                        break
                    results[upstream.task_id] = upstream.result
            else:
                local.released[dependant.id] = results
                local.releasing.append(dependant.id)
                released += 1
        local.released_at = now
        local.ready += released  # told at commit (see _notify_ready): this runs inside a transaction
        return unfinished

    def _skip_downstream(self, record: TaskRecord, now: float) -> list[tuple[str, TaskRecord]]:
        skipped: list[tuple[str, TaskRecord]] = []
        stack = [record]
        while stack:
            upstream = stack.pop()
            reason = f"upstream task {upstream.task_id!r} ended {upstream.state}"
            for dependant in self.store.dependants(upstream.id):
                if dependant.state in ("pending", "queued") and self._move(
                    dependant, S.SKIPPED, reason=reason, finished_at=now
                ):
                    skipped.append((ev.TASK_SKIPPED, dependant))
                    stack.append(dependant)
        return skipped

    def _settle_run(self, run_id: str | None, now: float) -> tuple[str, RunRecord] | None:
        if run_id is None:
            return None
        self.store.lock_run(run_id)  # one settler at a time, and the second one sees the first one's commit
        progress = self.store.run_progress(run_id)
        if any(progress.get(s) for s in UNFINISHED_STATES):
            return None
        if progress.get("failure") or progress.get("timeout"):
            state, event = "failure", ev.WORKFLOW_FAILED
        elif progress.get("canceled"):
            state, event = "canceled", ev.WORKFLOW_CANCELED
        else:
            state, event = "success", ev.WORKFLOW_SUCCEEDED
        if not self.store.update_run(run_id, "running", state=state, finished_at=now):
            return None
        run = self.store.get_run(run_id)
        self._run_cache.pop(run_id, None)
        log.info("run %s: %s", run_id, state)
        return event, run
