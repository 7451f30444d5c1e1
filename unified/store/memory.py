"""The in-memory store: first class, for tests and pure-library speed; nothing survives the process."""

from __future__ import annotations

import copy
import dataclasses
import functools
import heapq
import itertools
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from unified.errors import DuplicateTaskError, NotFoundError, ValidationError, not_found
from unified.store.base import check_changes
from unified.store.memory_admin import MemoryAdminRecords
from unified.store.memory_workflows import MemoryWorkflows
from unified.store.records import (
    CLAIMABLE_STATES,
    UNFINISHED_STATES,
    AttemptEnd,
    AttemptRecord,
    Dependant,
    LogRecord,
    RunRecord,
    TaskMove,
    TaskRecord,
)
from unified.store.yielding_lock import YieldingLock

_TASK_CHANGEABLE = frozenset(f.name for f in dataclasses.fields(TaskRecord)) - {"id", "seq"}
_NUMBER = operator.attrgetter("number")  # attempts sort by their number
# Dependant((id, state, dependencies)) in C: a NamedTuple's own __new__ is a Python frame, once per chain step
_DEPENDANT = functools.partial(tuple.__new__, Dependant)


def _check_moves(moves: list[TaskMove]) -> None:
    for task_id, _, _, changes in moves:
        if "dependencies" in changes:
            raise ValidationError("update_tasks cannot change dependencies: use update_task for that")
        if not _TASK_CHANGEABLE.issuperset(changes):  # check_changes's test without its call, once per move
            check_changes(changes, _TASK_CHANGEABLE, "tasks", task_id)  # raises, naming the fields


HeapKey = tuple[str, "str | None"]  # (queue, holder): a claim looks only at the heaps of its queues it may take from


class _ReadyHeaps:
    """Heaps of claimable task ids per queue and holder (None: any engine runs them): ready ones by (-priority, seq),
    waiting ones by not_before. Held tasks have heaps of their own, so a claim never pops (and pushes back) the
    entries of tasks other engines hold: 20,000 of them queued ahead made each claim take 130 ms instead of 11 us."""

    def __init__(self) -> None:
        self.ready: dict[HeapKey, list[tuple[int, int, str, int]]] = defaultdict(list)
        self.delayed: dict[HeapKey, list[tuple[float, int, int, str, int]]] = defaultdict(list)
        self.token: dict[str, int] = {}  # a task's newest entry; older entries are stale
        self.names: set[str] = set()  # the queues that have (or had) heaps
        self._tokens = itertools.count(1)

    def push(self, task: TaskRecord) -> None:
        token = next(self._tokens)
        self.token[task.id] = token
        key = (task.queue, task.holder)
        self.names.add(task.queue)
        if task.not_before is not None and task.state == "retrying":
            heapq.heappush(self.delayed[key], (task.not_before, -task.priority, task.seq, task.id, token))
        else:
            heapq.heappush(self.ready[key], (-task.priority, task.seq, task.id, token))

    def best(self, key: HeapKey, now: float) -> tuple[int, int, str] | None:
        """The head of the ready heap of ``key`` after promoting due entries and dropping stale ones."""
        delayed, ready = self.delayed[key], self.ready[key]
        while delayed and delayed[0][0] <= now:
            _, neg_priority, seq, task_id, token = heapq.heappop(delayed)
            heapq.heappush(ready, (neg_priority, seq, task_id, token))
        while ready and self.token.get(ready[0][2]) != ready[0][3]:
            heapq.heappop(ready)
        return ready[0][:3] if ready else None


class MemoryStore(MemoryWorkflows, MemoryAdminRecords):
    """Every record in dicts behind one re-entrant lock (a ``YieldingLock``)."""

    keeps_objects = True

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = YieldingLock()
        self._tasks: dict[str, TaskRecord] = {}
        self._dependants: dict[str, list[str]] = defaultdict(list)
        self._run_tasks: dict[str, list[str]] = defaultdict(list)
        self._attempts: dict[str, list[AttemptRecord]] = defaultdict(list)
        self._logs: dict[str, list[LogRecord]] = defaultdict(list)
        self._runs: dict[str, RunRecord] = {}
        self._heaps = _ReadyHeaps()
        self._seq = itertools.count(1)
        self._init_workflows()
        self._init_admin()

    def close(self) -> None:
        """Nothing to release."""

    def atomic(self) -> AbstractContextManager[Any]:
        """Hold the store's lock for the block (no rollback: the engine checks before it writes)."""
        return self._lock

    def savepoint(self) -> AbstractContextManager[Any]:
        """As :meth:`atomic` (no rollback)."""
        return self._lock

    # runs
    def insert_run(self, run: RunRecord) -> None:
        """Store a new run."""
        with self._lock:
            if run.run_id in self._runs:
                raise DuplicateTaskError(f"a run with id {run.run_id!r} already exists")
            run.seq = next(self._seq)
            self._runs[run.run_id] = copy.deepcopy(run)

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id."""
        with self._lock:
            if run_id not in self._runs:
                raise not_found(f"run with id {run_id!r}")
            return copy.deepcopy(self._runs[run_id])

    def list_runs(
        self,
        workflow_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        schedule_id: str | None = None,
        since: float | None = None,
        offset: int = 0,
        before: tuple[float, int] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered (``before``: a keyset cursor, see ``Store.list_runs``)."""
        with self._lock:
            runs = [
                r
                for r in self._runs.values()
                if (workflow_id is None or r.workflow_id == workflow_id)
                and (state is None or r.state == state)
                and (schedule_id is None or r.schedule_id == schedule_id)
                and (since is None or r.created_at >= since)
                and (before is None or (r.created_at, r.seq) < before)
            ]
            runs.sort(key=lambda r: (r.created_at, r.seq), reverse=True)
            return [copy.deepcopy(r) for r in runs[offset : offset + limit]]

    def update_run(self, run_id: str, expected_state: str | None, **changes: Any) -> bool:
        """Set fields of a run if its state matches."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise not_found(f"run with id {run_id!r}")
            if expected_state is not None and run.state != expected_state:
                return False
            for name, value in changes.items():
                setattr(run, name, copy.deepcopy(value))
            return True

    # tasks
    def insert_tasks(self, tasks: Iterable[TaskRecord]) -> None:
        """Store new tasks, all or none."""
        tasks = list(tasks)
        with self._lock:
            ids = [t.id for t in tasks]
            stored_tasks, dependants, run_tasks, seq = self._tasks, self._dependants, self._run_tasks, self._seq
            clash = None if stored_tasks.keys().isdisjoint(ids) else next(i for i in ids if i in stored_tasks)
            if clash is None and len(set(ids)) != len(ids):
                clash = next(i for i in ids if ids.count(i) > 1)
            if clash is not None:
                raise DuplicateTaskError(f"a task with id {clash!r} already exists: choose another task_id")
            for task in tasks:
                task.seq = next(seq)
                stored = task.copy()
                deps = stored.dependencies = list(task.dependencies)
                task_id = stored.id
                stored_tasks[task_id] = stored
                for upstream in deps:
                    dependants[upstream].append(task_id)
                if stored.run_id is not None:
                    run_tasks[stored.run_id].append(task_id)
                if stored.state in CLAIMABLE_STATES:
                    self._heaps.push(stored)

    def _get(self, task_id: str) -> TaskRecord:
        task = self._tasks.get(task_id)
        if task is None:
            raise not_found(f"task with id {task_id!r}")
        return task

    def get_task(self, task_id: str) -> TaskRecord:
        """The task with this global id."""
        with self._lock:
            return self._get(task_id).copy()

    def get_tasks(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        """The tasks with these ids that exist."""
        with self._lock:
            return [self._tasks[i].copy() for i in task_ids if i in self._tasks]

    def list_tasks(
        self,
        state: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        schedule_id: str | None = None,
        before_seq: int | None = None,
    ) -> list[TaskRecord]:
        """Tasks, newest first, optionally filtered; ``before_seq`` is a cursor."""
        with self._lock:
            source = self._run_tasks.get(run_id, []) if run_id is not None else self._tasks
            found = []
            for task_id in reversed(list(source)):
                task = self._tasks[task_id]
                if before_seq is not None and task.seq >= before_seq:
                    continue
                if (state is None or task.state == state) and (schedule_id is None or task.schedule_id == schedule_id):
                    found.append(task)
                    if len(found) >= offset + limit:
                        break
            return [t.copy() for t in found[offset:]]

    def run_tasks(self, run_id: str) -> list[TaskRecord]:
        """Every task of a run, in insertion order."""
        with self._lock:
            return [self._tasks[i].copy() for i in self._run_tasks.get(run_id, ())]

    def lock_dependants(self, task_ids: list[str]) -> dict[str, list[Dependant]]:
        """The tasks that depend on each of ``task_ids`` as they are now, in id order (atomic() already holds the one
        lock); tasks with no dependants are left out."""
        with self._lock:
            return {
                task_id: self._dependants_of(self._dependants[task_id])
                for task_id in dict.fromkeys(task_ids)
                if self._dependants.get(task_id)
            }

    def _dependants_of(self, task_ids: Iterable[str]) -> list[Dependant]:
        """The Dependant of each of these tasks, in id order."""
        tasks, found = self._tasks, []
        for task_id in sorted(task_ids):  # a loop, not a call per dependant: once per chain step
            task = tasks[task_id]
            found.append(_DEPENDANT((task_id, task.state, tuple(task.dependencies))))
        return found

    def lock_tasks(self, task_ids: list[str], for_dependant: bool = False) -> list[TaskRecord]:
        """The tasks with these ids that exist, as they are now, in id order (atomic() already holds the one lock)."""
        with self._lock:
            return [self._tasks[i].copy() for i in sorted(set(task_ids)) if i in self._tasks]

    def lock_run(self, run_id: str) -> None:
        """Nothing to do: atomic() already holds the one lock."""
        with self._lock:
            if run_id not in self._runs:
                raise not_found(f"run with id {run_id!r}")

    def run_progress(self, run_id: str) -> dict[str, int]:
        """How many tasks of a run are in each state."""
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for task_id in self._run_tasks.get(run_id, ()):
                counts[self._tasks[task_id].state] += 1
            return dict(counts)

    def dependants(self, task_id: str) -> list[TaskRecord]:
        """The tasks that depend on ``task_id``."""
        with self._lock:
            return [self._tasks[i].copy() for i in self._dependants.get(task_id, ())]

    def update_task(
        self, task_id: str, expected_state: str | None, expected_attempt: int | None = None, **changes: Any
    ) -> bool:
        """Compare-and-set on state (and attempt number)."""
        check_changes(changes, _TASK_CHANGEABLE, "tasks", task_id)
        with self._lock:
            task = self._get(task_id)
            before = task.dependencies
            if not self._compare_and_set(task, expected_state, expected_attempt, changes):
                return False
            if "dependencies" in changes:
                for upstream in before:
                    self._dependants[upstream].remove(task_id)
                for upstream in changes["dependencies"]:
                    self._dependants[upstream].append(task_id)
                task.dependencies = list(changes["dependencies"])  # not the caller's list
            return True

    def update_tasks(self, moves: list[TaskMove]) -> list[bool]:
        """Compare-and-set several tasks at once; whether each changed, in order (a missing task did not)."""
        _check_moves(moves)
        with self._lock:
            tasks = self._tasks
            return [
                (task := tasks.get(task_id)) is not None and self._compare_and_set(task, state, attempt, changes)
                for task_id, state, attempt, changes in moves
            ]

    def _compare_and_set(
        self, task: TaskRecord, expected_state: str | None, expected_attempt: int | None, changes: dict[str, Any]
    ) -> bool:
        """Under the lock: apply checked ``changes`` to the stored ``task`` if it is in the expected state."""
        if expected_state is not None and task.state != expected_state:
            return False
        if expected_attempt is not None and task.attempts != expected_attempt:
            return False
        for name, value in changes.items():
            setattr(task, name, value)
        if "state" in changes and task.state in CLAIMABLE_STATES:
            self._heaps.push(task)
        return True

    def apply_outcomes(
        self, moves: list[TaskMove], locking: list[bool], ends: list[AttemptEnd]
    ) -> tuple[list[bool], dict[str, list[Dependant]]]:
        """update_tasks, finish_attempts, then lock_dependants of the moved tasks flagged in ``locking``: the three
        verbs under one hold of the lock, without re-entering it for each (one report per chain step)."""
        _check_moves(moves)
        with self._lock:
            tasks, moved, locked = self._tasks, [], {}
            for (task_id, state, attempt, changes), lock in zip(moves, locking, strict=True):
                ok = (task := tasks.get(task_id)) is not None and self._compare_and_set(task, state, attempt, changes)
                moved.append(ok)
                if ok and lock and (dependants := self._dependants.get(task_id)):
                    locked[task_id] = dependants
            self._finish_running(ends)
            for task_id, ids in locked.items():  # read once every move is made
                locked[task_id] = self._dependants_of(ids)
            return moved, locked

    def claim_tasks(self, worker: str, now: float, lease_seconds: float, limit: int = 1,
                    queues: Iterable[str] | None = None, released: Sequence[str] = (),
                    holder: str | None = None) -> list[TaskRecord]:  # fmt: skip
        """Take up to ``limit`` claimable tasks, highest priority then oldest first (``released``, ``holder``: see
        Store)."""
        with self._lock:
            heaps = self._heaps
            # each queue once: a queue named twice would put its heap's head among the heads twice
            names = list(dict.fromkeys(queues)) if queues is not None else list(heaps.names)
            pending = self._released_candidates(released, names, queues is None, holder) if released else []
            room = self._room(names)
            if room:
                names = [q for q in names if room.get(q, 1) > 0]
                pending = [p for p in pending if p[1][0] in names]
            holders = (None,) if holder is None else (None, holder)
            # the head of each heap this claim may take from, as (entry, key): looked at once, and again only for
            # the heap a task was taken from (not every heap's per task claimed)
            heads = []  # a loop, not a comprehension: no frame of its own, once per chain step
            for q in names:
                for h in holders:
                    if (entry := heaps.best(key := (q, h), now)) is not None:
                        heads.append((entry, key))
            claimed: list[TaskRecord] = []
            while len(claimed) < limit:
                best = min(heads) if heads else None
                if pending and (best is None or pending[-1] < best):
                    (_, _, task_id), (queue, _) = pending.pop()
                    task = self._tasks[task_id]
                    task.queued_at = now  # queued in passing
                elif best is None:
                    break
                else:
                    (_, _, task_id), key = best
                    heapq.heappop(heaps.ready[key])
                    del heaps.token[task_id]
                    heads.remove(best)
                    if (head := heaps.best(key, now)) is not None:
                        heads.append((head, key))
                    task, queue = self._tasks[task_id], key[0]
                    if task.state not in CLAIMABLE_STATES:
                        continue
                task.state = "running"
                task.attempts += 1
                if task.started_at is None:
                    task.started_at = now
                task.lease_owner = worker
                task.lease_expires_at = now + lease_seconds
                claimed.append(task.copy())
                self._attempts[task_id].append(AttemptRecord(task_id, task.attempts, "running", now, worker=worker))
                if queue in room:
                    room[queue] -= 1
                    if room[queue] <= 0:  # full: nothing more from its heaps nor its released tasks
                        heads = [h for h in heads if h[1][0] != queue]
                        pending = [p for p in pending if p[1][0] != queue]
            return claimed

    def _released_candidates(
        self, released: Sequence[str], names: list[str], any_queue: bool, holder: str | None
    ) -> list[Any]:
        """The released tasks still pending as claim candidates, best last: each competes with the best of the heaps
        as if it were in its queue's heap (``names`` gains their queues when ``any_queue``)."""
        tasks, candidates = self._tasks, []
        for task_id in released:
            if (t := tasks.get(task_id)) is not None and t.state == "pending" and t.holder in (None, holder):
                if t.queue not in names:
                    if not any_queue:
                        continue
                    names.append(t.queue)
                candidates.append(((-t.priority, t.seq, t.id), (t.queue, t.holder)))
        candidates.sort(reverse=True)  # no two alike: seq and id are unique
        return candidates

    def _room(self, names: list[str]) -> dict[str, int]:
        """How many more tasks each limited queue among ``names`` may run now (empty: none is limited)."""
        if not self._queue_limits:
            return {}
        limits = {q: self._queue_limits[q] for q in names if q in self._queue_limits}
        if not limits:
            return {}
        running = Counter(t.queue for t in self._tasks.values() if t.state == "running" and t.queue in limits)
        return {q: max_running - running[q] for q, max_running in limits.items()}

    def extend_leases(self, worker: str, leases: dict[str, int], until: float) -> list[str]:
        """Extend the leases ``worker`` holds; returns the ids still held."""
        with self._lock:
            held = []
            for task_id, attempt in leases.items():
                task = self._tasks.get(task_id)
                if task and task.state == "running" and task.lease_owner == worker and task.attempts == attempt:
                    task.lease_expires_at = until
                    held.append(task_id)
            return held

    def expired_leases(self, now: float, limit: int = 100) -> list[TaskRecord]:
        """Running tasks whose lease expired before ``now``."""
        with self._lock:
            expired = [
                t.copy()
                for t in self._tasks.values()
                if t.state == "running" and t.lease_expires_at is not None and t.lease_expires_at < now
            ]
            return expired[:limit]

    def held_tasks(self, holder: str) -> list[str]:
        """The ids of the unfinished tasks held by ``holder``, oldest first."""
        with self._lock:
            held = [t for t in self._tasks.values() if t.holder == holder and t.state in UNFINISHED_STATES]
            return [t.id for t in sorted(held, key=lambda t: t.seq)]

    def leases_of(self, worker: str, expiring_before: float) -> dict[str, int]:
        """The running tasks leased to ``worker`` whose lease expires before ``expiring_before``: id -> attempt."""
        with self._lock:
            return {
                t.id: t.attempts
                for t in self._tasks.values()
                if t.state == "running" and t.lease_owner == worker and (t.lease_expires_at or 0.0) < expiring_before
            }

    def next_not_before(self) -> float | None:
        """The earliest not_before among retrying tasks."""
        with self._lock:
            times = [entry[0] for heap in self._heaps.delayed.values() for entry in heap[:1]]
            return min(times, default=None)

    def count_tasks_by_state(self) -> dict[str, int]:
        """How many tasks are in each state."""
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for task in self._tasks.values():
                counts[task.state] += 1
            return dict(counts)

    # attempts and logs
    def insert_attempt(self, attempt: AttemptRecord) -> None:
        """Record the start of an attempt."""
        with self._lock:
            self._attempts[attempt.task_id].append(attempt.copy())

    def finish_attempt(self, task_id: str, number: int, *, if_running: bool = False, **changes: Any) -> bool:
        """Set the outcome fields of an attempt (with ``if_running``, only while it runs); True if set."""
        with self._lock:
            for attempt in self._attempts.get(task_id, ()):
                if attempt.number == number:
                    if if_running and attempt.state != "running":
                        return False
                    for name, value in changes.items():
                        setattr(attempt, name, value)
                    return True
            raise NotFoundError(f"task {task_id!r} has no attempt {number}")

    def finish_attempts(self, outcomes: list[AttemptEnd]) -> None:
        """Set the outcome fields of several attempts at once, of those still running."""
        with self._lock:
            self._finish_running(outcomes)

    def _finish_running(self, outcomes: list[AttemptEnd]) -> None:
        for task_id, number, changes in outcomes:
            # newest first: attempts are appended as claimed, and the one ending is nearly always the last
            for attempt in reversed(self._attempts.get(task_id, ())):
                if attempt.number == number:  # one record per number
                    if attempt.state == "running":
                        for name, value in changes.items():
                            setattr(attempt, name, value)
                    break

    def list_attempts(self, task_id: str) -> list[AttemptRecord]:
        """The attempts of a task, by number."""
        with self._lock:
            return sorted((a.copy() for a in self._attempts.get(task_id, ())), key=_NUMBER)

    def task_with_attempts(self, task_id: str) -> tuple[TaskRecord, list[AttemptRecord]]:
        """The task with this global id and its attempts by number, read together."""
        with self._lock:  # read directly, not through get_task and list_attempts: each would enter the lock again
            attempts = sorted((a.copy() for a in self._attempts.get(task_id, ())), key=_NUMBER)
            return self._get(task_id).copy(), attempts

    def attempts_of(self, task_ids: Iterable[str]) -> dict[str, list[AttemptRecord]]:
        """The attempts of each of these tasks, by number (tasks without attempts are left out)."""
        with self._lock:
            found = {task_id: self._attempts.get(task_id) for task_id in task_ids}
            return {
                task_id: sorted((a.copy() for a in attempts), key=_NUMBER)
                for task_id, attempts in found.items()
                if attempts
            }

    def append_logs(self, lines: Iterable[LogRecord]) -> None:
        """Store captured log lines."""
        with self._lock:
            for line in lines:
                self._logs[line.task_id].append(line)

    def get_logs(self, task_id: str) -> list[LogRecord]:
        """The log lines of a task, oldest first."""
        with self._lock:
            return list(self._logs.get(task_id, ()))
