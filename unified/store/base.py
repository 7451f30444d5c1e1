"""The store protocol: the verbs that persist the records of ``unified.store.records``, with no policy inside.

Every implementation (memory, SQLite, PostgreSQL) passes the same contract tests in ``tests/contract``.
The engine decides what changes; the store only moves records, atomically where a verb says so.

One optional capability is not in the protocol: ``listen(callback) -> stop | None``. A store shared by processes
(PostgreSQL's LISTEN/NOTIFY, a watcher of the SQLite file) calls ``callback(queue)`` from its own thread whenever a
task of ``queue`` may have become claimable (``""``: any queue) and returns the function that stops listening;
workers look it up with ``getattr`` and poll when it is missing (the memory store) or returns None. Another one is
the attribute ``serial_writes``: True where write transactions take turns across threads and processes and each
commit waits for a sync (SQLite), so a worker pool claims inside the transaction that queues work instead of in one
of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from unified.errors import ValidationError
from unified.store.records import (
    AlertRecord,
    AlertRuleRecord,
    ApiKeyRecord,
    AttemptEnd,
    AttemptRecord,
    AuditRecord,
    Dependant,
    FireRecord,
    LogRecord,
    RunRecord,
    ScheduleRecord,
    SlaWatchRecord,
    TaskMove,
    TaskRecord,
    VersionRecord,
    WorkflowRecord,
    WorkflowSummary,
)


@runtime_checkable
class Store(Protocol):
    """Persistence verbs. Lookups of unknown ids raise NotFoundError; duplicates raise DuplicateTaskError."""

    url: str
    keeps_objects: bool  # True if results are kept as Python objects (memory); False if they must be JSON

    def close(self) -> None:
        """Release connections."""
        ...

    def atomic(self) -> AbstractContextManager[None]:
        """Group the verbs called inside into one transaction (re-entrant within a thread)."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """As :meth:`atomic`, and inside an open transaction a block whose writes alone are undone if it raises, the
        transaction going on (a SAVEPOINT). The memory store undoes nothing, as its ``atomic`` does not."""
        ...

    # workflows and versions
    def put_workflow(self, workflow: WorkflowRecord) -> None:
        """Insert or replace a workflow: its draft, name, description and times (the store keeps its own
        ``current_version`` and ``draft_hash``)."""
        ...

    def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow with this id."""
        ...

    def lock_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow with this id, its row locked until the surrounding atomic() ends: a change of its draft
        made from what this returns, then written in the same atomic(), loses no concurrent change."""
        ...

    def freeze_draft(self, workflow_id: str, created_at: float) -> VersionRecord:
        """The version matching the workflow's draft: the current one if their hashes are equal, else the draft frozen
        now as the number after the highest, which the workflow then points at (the draft itself stays as it is).

        One transaction: two starts of a changed draft freeze it once. NotFoundError for no such workflow,
        ValidationError for an empty draft.
        """
        ...

    def list_workflows(self) -> list[WorkflowRecord]:
        """Every workflow, oldest first."""
        ...

    def find_workflow(self, name: str) -> WorkflowRecord | None:
        """The workflow named ``name`` (names are unique), or None (reads no other workflow's specs)."""
        ...

    def get_workflows(self, workflow_ids: list[str]) -> list[WorkflowRecord]:
        """The workflows with these ids that exist, in the order given (a page of them, read at once)."""
        ...

    def workflow_summaries(self, workflow_ids: list[str]) -> list[WorkflowSummary]:
        """The summaries of the workflows with these ids that exist, in the order given (a page of a list: their
        draft specs are counted, not decoded), each with its newest run as ``list_runs`` orders them."""
        ...

    def workflow_names(self) -> dict[str, str]:
        """Every workflow's name by its id, oldest first, without reading any specs (for lists and menus)."""
        ...

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove a workflow and its versions (its runs stay as history)."""
        ...

    def get_version(self, workflow_id: str, number: int) -> VersionRecord:
        """One version of a workflow."""
        ...

    def list_versions(self, workflow_id: str) -> list[VersionRecord]:
        """Every version of a workflow, by number."""
        ...

    # runs
    def insert_run(self, run: RunRecord) -> None:
        """Store a new run, setting its ``seq`` (its place among runs created at the same time)."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id."""
        ...

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
        """Runs, newest first (by ``created_at``, then ``seq``), optionally filtered (``since``: created at or after;
        ``before``: only those after the run at this ``(created_at, seq)`` in that order, a page's keyset cursor)."""
        ...

    def update_run(self, run_id: str, expected_state: str | None, **changes: Any) -> bool:
        """Set fields of a run if its state is ``expected_state`` (None: any); True if it changed."""
        ...

    # tasks
    def insert_tasks(self, tasks: Iterable[TaskRecord]) -> None:
        """Store new tasks in one transaction, assigning ``seq``; an existing id raises DuplicateTaskError."""
        ...

    def get_task(self, task_id: str) -> TaskRecord:
        """The task with this global id."""
        ...

    def get_tasks(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        """The tasks with these ids that exist, in no particular order."""
        ...

    def list_tasks(
        self,
        state: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        schedule_id: str | None = None,
        before_seq: int | None = None,
    ) -> list[TaskRecord]:
        """Tasks, newest first (by seq), optionally filtered; ``before_seq`` is a cursor: only seq < it."""
        ...

    def run_tasks(self, run_id: str) -> list[TaskRecord]:
        """Every task of a run, in insertion order."""
        ...

    def dependants(self, task_id: str) -> list[TaskRecord]:
        """The tasks that list ``task_id`` among their dependencies."""
        ...

    def update_task(
        self, task_id: str, expected_state: str | None, expected_attempt: int | None = None, **changes: Any
    ) -> bool:
        """Compare-and-set: apply ``changes`` if the state is ``expected_state`` (None: any) and, when given,
        ``attempts`` equals ``expected_attempt`` (the fencing token of a claim). True if it changed."""
        ...

    def update_tasks(self, moves: list[TaskMove]) -> list[bool]:
        """Compare-and-set several tasks at once; each move is ``(task id, expected state, expected attempt,
        changes)`` as :meth:`update_task` takes them (dependencies excepted). Whether each changed, in order; a
        task that does not exist did not."""
        ...

    def run_progress(self, run_id: str) -> dict[str, int]:
        """How many tasks of a run are in each state."""
        ...

    def lock_tasks(self, task_ids: list[str], for_dependant: bool = False) -> list[TaskRecord]:
        """The tasks with these ids that exist, as they are now, locked until the surrounding atomic() ends (in id
        order): a task added with dependencies on them (``for_dependant``) decides pending or queued from states no
        one changes before it is stored, so the upstream task finishing meanwhile finds it and releases it."""
        ...

    def lock_dependants(self, task_ids: list[str]) -> dict[str, list[Dependant]]:
        """The tasks that depend on each of ``task_ids`` (those with none are left out) as they are now, locked until
        the surrounding atomic() ends (in id order).

        A writer that decides from other rows (are all upstream tasks done?) locks the row it may change first,
        so two such writers take turns and the second sees the first's commit.
        """
        ...

    def apply_outcomes(
        self, moves: list[TaskMove], locking: list[bool], ends: list[AttemptEnd]
    ) -> tuple[list[bool], dict[str, list[Dependant]]]:
        """Attempts' outcomes: :meth:`update_tasks` of ``moves``, :meth:`finish_attempts` of ``ends``, then
        :meth:`lock_dependants` of the moved tasks whose flag in ``locking`` is set (those that succeeded: their
        dependants may be released), in as few round trips as the store can. Returns what each returns."""
        ...

    def lock_run(self, run_id: str) -> None:
        """Lock a run's row until the surrounding atomic() ends, so runs are settled by one writer at a time."""
        ...

    def claim_tasks(self, worker: str, now: float, lease_seconds: float, limit: int = 1,
                    queues: Iterable[str] | None = None, released: Sequence[str] = (),
                    holder: str | None = None) -> list[TaskRecord]:  # fmt: skip
        """Atomically take up to ``limit`` claimable tasks (queued, or retrying with not_before <= now).

        Highest priority first, then lowest seq, never taking a task of a queue that already has its limit of
        running tasks (``set_queue_limit``). Each taken task becomes ``running`` with attempts + 1,
        started_at set if unset, lease_owner = worker and lease_expires_at = now + lease_seconds, and the start of
        that attempt is recorded (``running``, started at ``now`` by ``worker``) in the same transaction.
        Two concurrent claims never take the same task. Returns the tasks as they are after the claim.

        ``released``: ids of pending tasks the caller's transaction found ready (and locked, see
        ``lock_dependants``). Those still pending compete as if they were queued, and one taken is queued in
        passing (``queued_at = now``); the caller queues the rest. So a task released and claimed in one
        transaction is written once, not twice. A store may queue them all first instead (a limited queue).

        A task with a ``holder`` (the engine holding its in-process function) is taken only by a claim passing that
        ``holder``; the others pass it by.
        """
        ...

    def extend_leases(self, worker: str, leases: dict[str, int], until: float) -> list[str]:
        """Extend the leases ``worker`` holds (task id -> attempt number); returns the ids still held."""
        ...

    def expired_leases(self, now: float, limit: int = 100) -> list[TaskRecord]:
        """Running tasks whose lease expired before ``now``."""
        ...

    def leases_of(self, worker: str, expiring_before: float) -> dict[str, int]:
        """The running tasks leased to ``worker`` whose lease expires before ``expiring_before``: id -> attempt."""
        ...

    def held_tasks(self, holder: str) -> list[str]:
        """The ids of the unfinished tasks held by ``holder`` (see ``claim_tasks``), oldest first."""
        ...

    def renew_holder(self, holder: str, until: float) -> bool:
        """Prove the engine ``holder`` (see ``claim_tasks``) alive until ``until``. True if its proof was there and
        not swept; else the proof is written anew, not swept, and False is returned: it never proved itself, or
        another engine presumed it dead (:meth:`sweep_holder`)."""
        ...

    def expired_holders(self, now: float, limit: int = 100) -> list[str]:
        """The holders whose proof of life expired before ``now`` (swept or not), the longest expired first."""
        ...

    def sweep_holder(self, holder: str, now: float) -> bool:
        """Mark ``holder`` swept at ``now`` if its proof is still expired then (the caller goes on to cancel what it
        held); False if it was renewed meanwhile or is gone."""
        ...

    def drop_holder(self, holder: str, only_swept: bool = False) -> None:
        """Delete ``holder``'s proof (it holds nothing more); with ``only_swept``, only while it is marked swept."""
        ...

    def next_not_before(self) -> float | None:
        """The earliest not_before among retrying tasks, or None."""
        ...

    def count_tasks_by_state(self) -> dict[str, int]:
        """How many tasks are in each state."""
        ...

    # attempts and logs
    def insert_attempt(self, attempt: AttemptRecord) -> None:
        """Record the start of an attempt."""
        ...

    def finish_attempt(self, task_id: str, number: int, *, if_running: bool = False, **changes: Any) -> bool:
        """Set the outcome fields of an attempt (with ``if_running``, only while it is still running); True if set."""
        ...

    def finish_attempts(self, outcomes: list[AttemptEnd]) -> None:
        """Set the outcome fields of several attempts at once (each ``(task id, number, changes)``), of those still
        running; an attempt that already ended, or does not exist, is left as it is."""
        ...

    def list_attempts(self, task_id: str) -> list[AttemptRecord]:
        """The attempts of a task, by number."""
        ...

    def task_with_attempts(self, task_id: str) -> tuple[TaskRecord, list[AttemptRecord]]:
        """The task with this global id and its attempts by number, read together (one query where SQL)."""
        ...

    def attempts_of(self, task_ids: Iterable[str]) -> dict[str, list[AttemptRecord]]:
        """The attempts of each of these tasks, by number (tasks without attempts are left out)."""
        ...

    def append_logs(self, lines: Iterable[LogRecord]) -> None:
        """Store captured log lines."""
        ...

    def get_logs(self, task_id: str) -> list[LogRecord]:
        """The log lines of a task, oldest first."""
        ...

    # alerts
    def insert_alert(self, alert: AlertRecord) -> None:
        """Store an alert."""
        ...

    def update_alert(self, alert_id: str, **changes: Any) -> None:
        """Set the delivery fields of an alert."""
        ...

    def list_alerts(self, limit: int = 100, status: str | None = None) -> list[AlertRecord]:
        """Alerts, newest first; only those whose delivery is ``status`` (sent, failed, pending) when given."""
        ...

    def take_alerts(self, owner: str, now: float, until: float, limit: int = 100) -> list[AlertRecord]:
        """Lease to ``owner`` until ``until`` the pending alerts whose lease expired before ``now`` (an alert without
        a lease is never taken), the longest expired first, and return them as taken. Each is taken by
        compare-and-set: of two concurrent takers, one gets it."""
        ...

    def renew_alerts(self, owner: str, until: float, alert_ids: Iterable[str]) -> int:
        """Extend to ``until`` the leases of those of ``alert_ids`` still pending and leased to ``owner``; how many
        there were. Named, not every alert of the owner: one whose outcome the owner failed to record is no longer in
        its hands, and must lapse for a takeover rather than stay leased for as long as the owner lives."""
        ...

    def update_owned_alert(self, alert_id: str, owner: str, /, **changes: Any) -> bool:
        """Set fields of an alert only while it is pending and leased to ``owner`` (the fence of a delivery: an alert
        another process took over meanwhile is left as it is); True if it changed, NotFoundError for no such alert."""
        ...

    # SLA watches
    def insert_sla_watches(self, watches: Iterable[SlaWatchRecord]) -> None:
        """Store deadlines to watch; one already stored (same kind and key) is left as it is."""
        ...

    def due_sla_watches(self, now: float, limit: int = 100) -> list[SlaWatchRecord]:
        """Unsettled watches whose deadline is at or before ``now``, earliest first (read through an index of the
        unsettled ones: settled watches cost nothing)."""
        ...

    def settle_sla_watch(self, kind: str, key: str, outcome: str, at: float) -> bool:
        """Set the outcome of a watch if it has none yet (compare-and-set: of several watchers, one settles it);
        True if this call did."""
        ...

    def next_sla_deadline(self) -> float | None:
        """The earliest deadline among unsettled watches, or None."""
        ...

    def put_alert_rule(self, rule: AlertRuleRecord) -> None:
        """Insert or replace an alert rule."""
        ...

    def list_alert_rules(self) -> list[AlertRuleRecord]:
        """Every alert rule, oldest first."""
        ...

    def delete_alert_rule(self, rule_id: str) -> None:
        """Remove an alert rule."""
        ...

    # schedules and their fires
    def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace a schedule."""
        ...

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        """The schedule with this id."""
        ...

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, oldest first."""
        ...

    def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        """Set fields of a schedule."""
        ...

    def delete_schedule(self, schedule_id: str) -> None:
        """Remove a schedule (its fires stay as history)."""
        ...

    def due_schedules(self, now: float, limit: int = 100) -> list[ScheduleRecord]:
        """Unpaused schedules whose next_fire_at is at or before ``now``, earliest first."""
        ...

    def next_schedule_fire(self) -> float | None:
        """The earliest next_fire_at among unpaused schedules, or None."""
        ...

    def insert_fire(self, fire: FireRecord) -> bool:
        """Record a fire; False (and nothing written) if that (schedule_id, fire_time) exists already."""
        ...

    def update_fire(
        self, schedule_id: str, fire_time: float, expected_state: str | None = None, **changes: Any
    ) -> bool:
        """Set fields of a fire (run_id, task_id, state, reason); with ``expected_state``, only if the fire is in that
        state (False, nothing written, if not: another scheduler changed it first)."""
        ...

    def queued_fires(self, limit: int = 100) -> list[FireRecord]:
        """Fires waiting for a free run (state ``queued``: a backfill at max_active_runs) of every schedule, oldest
        fire_time first."""
        ...

    def list_fires(self, schedule_id: str, limit: int = 100) -> list[FireRecord]:
        """Fires of a schedule, newest fire_time first."""
        ...

    # api keys and the audit log
    def put_api_key(self, key: ApiKeyRecord) -> None:
        """Insert or replace an API key."""
        ...

    def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The API key with this id."""
        ...

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, oldest first."""
        ...

    def lock_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, oldest first, their rows locked until the surrounding atomic() ends (a change that depends
        on the other keys, such as revoking all but the last admin key, then sees the others' changes)."""
        ...

    def update_api_key(self, key_id: str, **changes: Any) -> None:
        """Set fields of an API key (last_used_at, revoked_at)."""
        ...

    def insert_audit(self, entry: AuditRecord) -> None:
        """Append to the audit log."""
        ...

    def list_audit(self, limit: int = 100, offset: int = 0) -> list[AuditRecord]:
        """Audit entries, newest first."""
        ...

    # queue limits
    def set_queue_limit(self, queue: str, max_running: int | None) -> None:
        """Let at most ``max_running`` tasks of ``queue`` be running at once; None removes the limit.

        ``claim_tasks`` honours it across every worker of the store, also under concurrent claims.
        """
        ...

    def queue_limits(self) -> dict[str, int]:
        """Every queue limit: queue name -> max_running."""
        ...


def check_changes(changes: Iterable[str], changeable: frozenset[str], what: str, key: str) -> None:
    """Refuse a change of a field that is not among ``changeable`` (a key, the seq, or no field at all) of the
    record ``key`` of ``what`` (a table's name), naming it; every store checks its updates this way."""
    if not changeable.issuperset(changes):  # per task and change: a set test, not a scan
        wrong = sorted(n for n in changes if n not in changeable)
        raise ValidationError(
            f"cannot change {', '.join(wrong)} of {what} {key!r}; changeable fields: {', '.join(sorted(changeable))}"
        )


def apply_outcomes_in_turn(
    store: Store, moves: list[TaskMove], locking: list[bool], ends: list[AttemptEnd]
) -> tuple[list[bool], dict[str, list[Dependant]]]:
    """:meth:`Store.apply_outcomes` as its three verbs, one after the other."""
    moved = store.update_tasks(moves)
    if ends:
        store.finish_attempts(ends)
    ids = [move[0] for move, changed, lock in zip(moves, moved, locking, strict=True) if changed and lock]
    return moved, (store.lock_dependants(ids) if ids else {})
