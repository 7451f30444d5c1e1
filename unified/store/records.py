"""The records unified persists: tasks, their attempts and logs, runs, workflows and their versions, schedules and
their fires, alerts and their rules, API keys and the audit log. Plain data; the verbs that persist them are the
store protocol's (``unified.store.base``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

CLAIMABLE_STATES = ("queued", "retrying")
UNFINISHED_STATES = ("pending", "queued", "running", "retrying")


@dataclass(slots=True)
class TaskRecord:
    """One task instance. ``id`` is global; ``task_id`` is the name within its run (equal for ad-hoc tasks)."""

    id: str
    task_id: str
    run_id: str | None
    name: str
    spec: dict[str, Any]  # Task.spec(): what to run and how (JSON)
    state: str
    priority: int = 0
    queue: str = "default"
    dependencies: list[str] = field(default_factory=list)  # global ids of upstream tasks
    attempts: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None  # a retrying task is not claimed before this time
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    reason: str | None = None  # why it was skipped or canceled
    seq: int = 0  # set by the store on insert: FIFO order among equal priorities
    schedule_id: str | None = None  # the schedule that fired it, if any
    # the engine holding its in-process function (a lambda, closure or __main__ function): only that one claims it
    holder: str | None = None

    def copy(self) -> TaskRecord:
        """A shallow copy; positional construction is about 6x faster than copy.copy or dataclasses.replace."""
        return TaskRecord(
            self.id, self.task_id, self.run_id, self.name, self.spec, self.state, self.priority, self.queue,
            self.dependencies, self.attempts, self.result, self.error, self.metadata, self.created_at, self.queued_at,
            self.started_at, self.finished_at, self.not_before, self.lease_owner, self.lease_expires_at, self.reason,
            self.seq, self.schedule_id, self.holder,
        )  # fmt: skip


class WorkflowSummary(NamedTuple):
    """A workflow as a list shows it: its task count without its task specs, which a store need not decode, and
    its newest run (None when it never ran)."""

    workflow_id: str
    name: str
    description: str
    current_version: int | None
    task_count: int
    last_run_id: str | None = None
    last_run_state: str | None = None
    last_run_at: float | None = None  # when that run was created


# A compare-and-set of one task as the store's update verbs take it: (task id, expected state, expected attempt,
# changes); None expects any state or attempt.
TaskMove = tuple[str, str | None, int | None, dict[str, Any]]
# The end of one attempt: (task id, attempt number, the fields it sets).
AttemptEnd = tuple[str, int, dict[str, Any]]


class Dependant(NamedTuple):
    """What releasing a finished task's dependants needs of each: its state and what it depends on (global ids).

    Narrower than its TaskRecord, so a database store reads three columns instead of decoding every spec.
    """

    id: str
    state: str
    dependencies: tuple[str, ...]


@dataclass(slots=True)
class AttemptRecord:
    """One try of a task instance."""

    task_id: str  # the global task id
    number: int  # 1 for the first attempt; also the lease's fencing token
    state: str  # running while it runs, then success / failure / timeout / canceled / lost
    started_at: float
    finished_at: float | None = None
    error: dict[str, Any] | None = None  # {"type", "message", "traceback"}
    worker: str | None = None

    def copy(self) -> AttemptRecord:
        """A shallow copy (positional construction: see TaskRecord.copy)."""
        return AttemptRecord(
            self.task_id, self.number, self.state, self.started_at, self.finished_at, self.error, self.worker
        )


@dataclass(slots=True)
class LogRecord:
    """One captured log line of one attempt."""

    task_id: str
    attempt: int
    ts: float
    level: str
    message: str


@dataclass(slots=True)
class RunRecord:
    """One execution of a workflow version."""

    run_id: str
    workflow_id: str | None
    version: int | None
    state: str  # running, success, failure, canceled
    params: dict[str, Any] = field(default_factory=dict)
    trigger: str = "manual"  # manual, api, schedule, retry
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    schedule_id: str | None = None  # the schedule that fired it, if any
    seq: int = 0  # set by the store on insert: the order of runs created at the same time (pages go by it)


@dataclass(slots=True)
class WorkflowRecord:
    """A workflow: its draft task specs and the number of its newest frozen version."""

    workflow_id: str
    name: str
    description: str = ""
    tasks: list[dict[str, Any]] = field(default_factory=list)  # the draft: edits since the last version
    # the version the draft was last frozen as: moved only by freeze_draft (a put keeps the stored one, whatever the
    # caller says), so a draft edited from a copy read before a concurrent start cannot point it back
    current_version: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # graph_hash of the draft, set by the store on every put (what a caller passes is ignored), so starting a run
    # of an unchanged draft needs no hashing; None in rows written before it was kept
    draft_hash: str | None = None


@dataclass(slots=True)
class VersionRecord:
    """An immutable snapshot of a workflow's task graph."""

    workflow_id: str
    number: int
    hash: str
    tasks: list[dict[str, Any]]
    created_at: float


@dataclass(slots=True)
class AlertRecord:
    """One alert raised by an event, with how its delivery went."""

    alert_id: str
    event: str
    payload: dict[str, Any]
    created_at: float
    channel: str = "handler"
    status: str = "sent"  # pending, sent, failed
    error: str | None = None
    rule_id: str | None = None
    attempts: int = 0  # delivery attempts made
    delivered_at: float | None = None
    # a pending alert is leased to the alert service delivering it (migration 0011); once the lease lapses (its
    # process died) any other service takes it over. Both None on alerts stored before, and on handler alerts
    owner: str | None = None
    lease_expires_at: float | None = None


@dataclass(slots=True)
class SlaWatchRecord:
    """A deadline of a task or run that declared ``sla_seconds``, stored with it (migration 0012); ``outcome`` is
    None until one watcher settles it (``missed``, ``met``, or ``gone`` for work deleted meanwhile)."""

    kind: str  # task or run
    key: str  # the task's global id or the run's id
    deadline: float
    sla_seconds: float
    outcome: str | None = None
    settled_at: float | None = None


@dataclass(slots=True)
class ScheduleRecord:
    """When to start a workflow run or an ad-hoc task: a cron expression or an interval, in a time zone."""

    schedule_id: str
    name: str
    target_type: str  # "workflow" or "task"
    target: dict[str, Any]  # {"workflow_id", "params"} or {"task": Task.spec()}
    cron: str | None = None
    interval_seconds: float | None = None
    timezone: str = "UTC"
    start_at: float | None = None
    end_at: float | None = None
    catchup: bool = False
    max_active_runs: int = 1
    paused: bool = False
    next_fire_at: float | None = None  # None once the schedule has ended
    last_fire_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class FireRecord:
    """One fire time of a schedule; (schedule_id, fire_time) is unique, so a fire happens once."""

    schedule_id: str
    fire_time: float
    created_at: float
    run_id: str | None = None  # the run it started (workflow targets)
    task_id: str | None = None  # the task it queued (task targets)
    state: str = "started"  # started, or skipped (with reason) when max_active_runs was reached
    reason: str | None = None


@dataclass(slots=True)
class AlertRuleRecord:
    """Which events, optionally of one workflow or task name, go to which channel."""

    rule_id: str
    events: list[str]
    channel: dict[str, Any]  # {"type": "webhook", "url": ..., ...}: what alerts.channel_from_config builds
    workflow: str | None = None  # a workflow id or name
    task_name: str | None = None
    enabled: bool = True
    created_at: float = 0.0


@dataclass(slots=True)
class ApiKeyRecord:
    """An API key: only its hash is stored; ``key_id`` is the public part the secret is found by."""

    key_id: str
    name: str
    role: str  # viewer, operator, admin
    key_hash: str
    created_at: float
    owner: str | None = None
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None
    session_epoch: int = 0  # raised when every web session signed in with this key must end (sign-out)


@dataclass(slots=True)
class AuditRecord:
    """One mutating request: who, what, on which target, with what outcome."""

    audit_id: str
    at: float
    key_name: str | None
    role: str | None
    method: str
    path: str
    target: str | None
    outcome: int  # the HTTP status
    detail: str | None = None
