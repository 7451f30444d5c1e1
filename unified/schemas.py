"""The REST API's request and response models (pydantic v2); requests refuse unknown fields.

Timestamps in responses are ISO-8601 UTC text; numbers in requests are bounded so that no input can overflow
a database column or a timer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Priority = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
Seconds = Annotated[float, Field(ge=0, le=31_536_000)]  # at most a year
JsonObject = dict[str, Any]


class Request(BaseModel):
    """Base of request bodies: unknown fields, NaN and infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Response(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="ignore")


# -- errors ------------------------------------------------------------------------------------------------
class ErrorDetail(Response):
    """What went wrong: a stable code, a message saying what to do, and structured details."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(Response):
    """The body of every error response."""

    error: ErrorDetail


class Page(Response):
    """Base of paginated lists: pass ``next_cursor`` back as ``cursor`` for the next page (None: no more)."""

    next_cursor: str | None = None


# -- health ------------------------------------------------------------------------------------------------
class Health(Response):
    """The server is up; which store, how many workers, whether the scheduler runs."""

    status: Literal["ok"] = "ok"
    version: str
    store: str
    workers: int
    scheduler: bool


# -- tasks -------------------------------------------------------------------------------------------------
class TaskOptions(Request):
    """Task options a request may set; unset ones take the registered task's defaults."""

    name: Name | None = None
    timeout: Annotated[float, Field(gt=0, le=31_536_000)] | None = None
    max_retries: Annotated[int, Field(ge=0, le=1000)] | None = None
    retry_delay_seconds: Seconds | None = None
    backoff_factor: Annotated[float, Field(ge=1, le=100)] | None = None
    max_retry_delay_seconds: Seconds | None = None
    jitter: bool | None = None
    priority: Priority | None = None
    queue: Name | None = None
    isolation: Literal["thread", "process"] | None = None
    metadata: JsonObject | None = None


class TaskIn(TaskOptions):
    """A task to queue or to add to a workflow: a registered name or folder import path, or a shell command."""

    task_id: Identifier | None = None
    task: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        None, description="a name registered with @task, or 'module:function' of a module in the workflows folder"
    )
    command: Annotated[str, Field(min_length=1, max_length=10_000)] | None = Field(
        None, description="a shell command (admin only, and only when the server runs with --allow-shell)"
    )
    args: list[Any] = Field(default_factory=list, max_length=1000)
    kwargs: JsonObject = Field(default_factory=dict)
    dependencies: list[Identifier] = Field(default_factory=list, max_length=1000)


class HistoryOut(Response):
    """One attempt of a task."""

    attempt: int
    state: str
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    error: JsonObject | None
    traceback: str | None
    worker: str | None


class TaskOut(Response):
    """A task instance: state, options, timings, result or error, and its attempt history."""

    id: str
    task_id: str
    name: str
    run_id: str | None
    state: str
    priority: int
    queue: str
    attempts: int
    max_retries: int
    timeout: float | None
    dependencies: list[str]
    created_at: str | None
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    next_attempt_at: str | None = None  # a retrying task's next attempt, once its backoff ends
    duration_seconds: float | None
    result: Any = None
    error: JsonObject | None
    reason: str | None
    metadata: JsonObject
    history: list[HistoryOut]


class TaskQueued(Response):
    """A queued task's id."""

    task_id: str
    state: str


class TaskPage(Page):
    """A page of tasks, newest first."""

    items: list[TaskOut]


class LogLineOut(Response):
    """One captured log line."""

    ts: str | None
    level: str
    message: str
    attempt: int


class LogPage(Page):
    """A page of a task's log lines, oldest first."""

    items: list[LogLineOut]


class TaskAction(Response):
    """The outcome of cancel or retry on a task."""

    task_id: str
    state: str


# -- workflows, versions and runs ----------------------------------------------------------------------------
class WorkflowIn(Request):
    """A new workflow: name and description as in the seed, optionally with its tasks."""

    name: Name
    description: Annotated[str, Field(max_length=10_000)] = ""
    tasks: list[TaskIn] = Field(default_factory=list, max_length=1000)


class WorkflowOut(Response):
    """A workflow with its draft task specs."""

    workflow_id: str
    name: str
    description: str
    current_version: int | None
    tasks: list[JsonObject]
    created_at: str | None
    updated_at: str | None


class WorkflowPage(Page):
    """A page of workflows, oldest first."""

    items: list[WorkflowOut]


class WorkflowTaskAdded(Response):
    """A task added to a workflow's draft."""

    workflow_id: str
    task_id: str


class VersionOut(Response):
    """A frozen version of a workflow."""

    number: int
    hash: str
    created_at: str | None
    tasks: list[JsonObject]


class RunIn(Request):
    """Start a run: params for its tasks (``ctx.params``) and optionally an earlier version."""

    params: JsonObject = Field(default_factory=dict)
    version: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None


class RunAccepted(Response):
    """A run that was started."""

    run_id: str
    workflow_id: str
    version: int | None
    state: str


class RunOut(Response):
    """A run without its tasks."""

    run_id: str
    workflow_id: str | None
    version: int | None
    state: str
    trigger: str
    params: JsonObject
    started_at: str | None
    finished_at: str | None
    metadata: JsonObject


class RunDetail(RunOut):
    """A run with every task's state and the results of those that succeeded."""

    results: JsonObject
    tasks: dict[str, TaskOut]


class RunPage(Page):
    """A page of runs, newest first."""

    items: list[RunOut]


class RunAction(Response):
    """The outcome of cancel or retry on a run: how many tasks it touched."""

    run_id: str
    state: str
    count: int


class LoadErrorOut(Response):
    """A workflows-folder file that failed to import."""

    file: str
    error: str
    traceback: str


class FolderReport(Response):
    """The last load of the workflows folder."""

    folder: str | None
    modules: list[str]
    workflows: list[str]
    errors: list[LoadErrorOut]
    registered_tasks: list[str]


# -- keys and audit ------------------------------------------------------------------------------------------
class ApiKeyIn(Request):
    """A new API key."""

    name: Name
    role: Literal["viewer", "operator", "admin"]
    owner: Annotated[str, Field(max_length=200)] | None = None
    expires_at: datetime | None = Field(None, description="when the key stops working (ISO-8601); none: never")


class ApiKeyOut(Response):
    """An API key's public fields (never its secret or hash)."""

    key_id: str
    name: str
    role: str
    owner: str | None
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    """A new key with its secret, shown this once."""

    key: str


class AuditOut(Response):
    """One mutating request."""

    audit_id: str
    at: str | None
    key_name: str | None
    role: str | None
    method: str
    path: str
    target: str | None
    outcome: int
    detail: str | None


class AuditPage(Page):
    """A page of the audit log, newest first."""

    items: list[AuditOut]


# -- schedules and alerts --------------------------------------------------------------------------------------
class ScheduleIn(Request):
    """A schedule: a workflow (with params) or one task, on a cron expression or an interval."""

    name: Name | None = None
    workflow_id: Identifier | None = Field(None, description="the workflow to run (or give 'task')")
    task: TaskIn | None = Field(None, description="the task to queue on each fire (or give 'workflow_id')")
    params: JsonObject = Field(default_factory=dict, description="params of each run (workflow schedules)")
    sla_seconds: Annotated[float, Field(gt=0, le=31_536_000)] | None = Field(
        None, description="raise sla_missed for a run unfinished this long after its fire (workflow schedules)"
    )
    cron: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(None, description="e.g. '*/5 * * * *'")
    interval_seconds: Annotated[float, Field(ge=0.01, le=31_536_000)] | None = None
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    catchup: bool = False
    max_active_runs: Annotated[int, Field(ge=1, le=1000)] = 1


class FireOut(Response):
    """One fire of a schedule."""

    fire_time: str | None
    state: str
    run_id: str | None = None
    task_id: str | None = None
    reason: str | None = None


class ScheduleOut(Response):
    """A schedule with its next fire time and its last fire."""

    schedule_id: str
    name: str
    target_type: str
    target: JsonObject
    cron: str | None
    interval_seconds: float | None
    timezone: str
    start_at: str | None
    end_at: str | None
    catchup: bool
    max_active_runs: int
    paused: bool
    next_fire_time: str | None
    last_fire_time: str | None
    last_fire: FireOut | None
    created_at: str | None
    updated_at: str | None


class ScheduleDetail(ScheduleOut):
    """A schedule with its next few fire times."""

    next_fire_times: list[str]


class SchedulePage(Page):
    """A page of schedules, oldest first."""

    items: list[ScheduleOut]


class BackfillIn(Request):
    """The range of fire times to run that never fired."""

    start: datetime
    end: datetime


class AlertRuleIn(Request):
    """Which events (optionally of one workflow or task name) go to which channel."""

    events: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=50)
    channel: JsonObject = Field(description='e.g. {"type": "webhook", "url": "https://...", "secret": "..."}')
    workflow: Annotated[str, Field(max_length=200)] | None = None
    task_name: Annotated[str, Field(max_length=200)] | None = None


class AlertRuleOut(Response):
    """An alert rule; secrets in its channel are masked."""

    rule_id: str
    events: list[str]
    channel: JsonObject
    workflow: str | None
    task_name: str | None
    enabled: bool
    created_at: str | None


class AlertOut(Response):
    """An alert raised by an event, with its delivery outcome."""

    alert_id: str
    event: str
    rule_id: str | None
    channel: str
    status: str
    attempts: int
    error: str | None
    created_at: str | None
    delivered_at: str | None
    alert: JsonObject


class AlertPage(Page):
    """A page of alerts, newest first."""

    items: list[AlertOut]
