"""The SQL schema of the store (SQLAlchemy Core tables) and the mapping between its rows and the records of base.py.

Column names equal the record field names. JSON fields are Text holding JSON; timestamps are float epoch seconds.
Tables whose records have no order field carry a hidden autoincrement ``seq`` that breaks ties in insertion order.
The Alembic migrations in ``migrations/versions`` must build exactly these tables (a test compares them).
The hot statements (claim, insert, compare-and-set updates) are built here once, with bind parameters.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import sqlalchemy as sa

from unified.errors import SerializationError
from unified.store import spec_packing
from unified.store.base import check_changes
from unified.store.records import (
    UNFINISHED_STATES,
    AlertRecord,
    AlertRuleRecord,
    ApiKeyRecord,
    AttemptRecord,
    AuditRecord,
    FireRecord,
    LogRecord,
    RunRecord,
    ScheduleRecord,
    SlaWatchRecord,
    TaskRecord,
    VersionRecord,
    WorkflowRecord,
)
from unified.utils import from_json, to_json

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# the claim index holds only claimable tasks any engine can run; queries must repeat this exact text for the planner
# to use it. Held ones (see TaskRecord.holder) have an index of their own, which only their holder's claims walk
CLAIMABLE_SQL = "state IN ('queued', 'retrying')"
FREE_SQL, HELD_SQL = "holder IS NULL", "holder IS NOT NULL"
RETRYING_SQL = "state = 'retrying'"  # as text, so SQLite sees that a query matches the partial index's condition
RUNNING_SQL = "state = 'running'"

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# SQLite makes only "INTEGER PRIMARY KEY" an autoincrementing rowid; PostgreSQL gets a bigserial
SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Id = sa.String(255)
Time = sa.Double


def _seq() -> sa.Column[int]:
    return sa.Column("seq", SeqType, primary_key=True, autoincrement=True)


tasks = sa.Table(
    "tasks",
    metadata,
    _seq(),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("task_id", Id, nullable=False),
    sa.Column("run_id", Id, nullable=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("dependencies", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("queued_at", Time, nullable=True),
    sa.Column("started_at", Time, nullable=True),
    sa.Column("finished_at", Time, nullable=True),
    sa.Column("not_before", Time, nullable=True),
    sa.Column("lease_owner", sa.String(255), nullable=True),
    sa.Column("lease_expires_at", Time, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("schedule_id", Id, nullable=True),
    sa.Column("holder", sa.String(255), nullable=True),  # see TaskRecord.holder (migration 0006)
    # PostgreSQL: a task added on it while it was unfinished (see SqlOutcomes.lock_tasks); not part of TaskRecord
    sa.Column("gained_dependants", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_tasks_state", "state", "seq"),
    # partial indexes hold only the rows their queries read: fewer index pages written per task (migration 0003)
    *(
        sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))
        for name, columns, where in (
            ("ix_tasks_run", ("run_id", "seq"), "run_id IS NOT NULL"),
            ("ix_tasks_schedule", ("schedule_id", "seq"), "schedule_id IS NOT NULL"),
            ("ix_tasks_not_before", ("not_before",), RETRYING_SQL),
            ("ix_tasks_lease", ("lease_expires_at",), RUNNING_SQL),
            ("ix_tasks_holder", ("holder", "seq"), HELD_SQL),  # few: lambdas of running processes
        )
    ),
    sqlite_autoincrement=True,  # seq never reuses a number
)
for _name, _columns, _where in (  # migration 0010 split them
    ("ix_tasks_claim", (tasks.c.priority.desc(), tasks.c.seq), f"{CLAIMABLE_SQL} AND {FREE_SQL}"),
    ("ix_tasks_claim_held", (tasks.c.holder, tasks.c.priority.desc(), tasks.c.seq), f"{CLAIMABLE_SQL} AND {HELD_SQL}"),
):
    sa.Index(_name, *_columns, sqlite_where=sa.text(_where), postgresql_where=sa.text(_where))

task_deps = sa.Table(
    "task_deps",
    metadata,
    sa.Column("task_id", Id, sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("depends_on", Id, primary_key=True),
    sa.Index("ix_task_deps_depends_on", "depends_on"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("task_id", Id, sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("finished_at", Time, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.String(255), nullable=True),
)

logs = sa.Table(
    "logs",
    metadata,
    _seq(),
    sa.Column("task_id", Id, sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("ts", Time, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_logs_task", "task_id", "ts"),
)

runs = sa.Table(
    "runs",
    metadata,
    _seq(),
    sa.Column("run_id", Id, nullable=False, unique=True),
    sa.Column("workflow_id", Id, nullable=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("started_at", Time, nullable=True),
    sa.Column("finished_at", Time, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("schedule_id", Id, nullable=True),
    sa.Index("ix_runs_created", "created_at", "seq"),
    sa.Index("ix_runs_workflow", "workflow_id", "created_at"),
    sa.Index("ix_runs_schedule", "schedule_id", "created_at"),
)

workflows = sa.Table(
    "workflows",
    metadata,
    _seq(),
    sa.Column("workflow_id", Id, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tasks", sa.Text, nullable=False),
    sa.Column("current_version", sa.Integer, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("draft_hash", sa.String(128), nullable=True),
    sa.Index("ux_workflows_name", "name", unique=True),  # one workflow per name (revision 0005)
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.workflow_id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("hash", sa.String(128), nullable=False),
    sa.Column("tasks", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

PENDING_ALERT = sa.text("status = 'pending'")
alerts = sa.Table(
    "alerts",
    metadata,
    _seq(),
    sa.Column("alert_id", Id, nullable=False, unique=True),
    sa.Column("event", sa.String(255), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("rule_id", Id, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("delivered_at", Time, nullable=True),
    sa.Column("owner", sa.String(255), nullable=True),  # the lease of a pending alert (migration 0011)
    sa.Column("lease_expires_at", Time, nullable=True),
    sa.Index("ix_alerts_created", "created_at", "seq"),
    # the pending alerts, by lease: what a takeover or a renewal reads (few: those being delivered)
    sa.Index("ix_alerts_pending", "lease_expires_at", sqlite_where=PENDING_ALERT, postgresql_where=PENDING_ALERT),
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    _seq(),
    sa.Column("rule_id", Id, nullable=False, unique=True),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("workflow", Id, nullable=True),
    sa.Column("task_name", sa.Text, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

schedules = sa.Table(
    "schedules",
    metadata,
    _seq(),
    sa.Column("schedule_id", Id, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("target_type", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("cron", sa.String(255), nullable=True),
    sa.Column("interval_seconds", Time, nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("start_at", Time, nullable=True),
    sa.Column("end_at", Time, nullable=True),
    sa.Column("catchup", sa.Boolean, nullable=False),
    sa.Column("max_active_runs", sa.Integer, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("next_fire_at", Time, nullable=True),
    sa.Column("last_fire_at", Time, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_schedules_due", "paused", "next_fire_at"),
)

QUEUED_FIRE = sa.text("state = 'queued'")
# no foreign key to schedules: a deleted schedule's fires stay as history
fires = sa.Table(
    "fires",
    metadata,
    sa.Column("schedule_id", Id, primary_key=True),
    sa.Column("fire_time", Time, primary_key=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("run_id", Id, nullable=True),
    sa.Column("task_id", Id, nullable=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    # backfilled fire times waiting for a free run, looked for by every scheduler pass (migration 0008)
    sa.Index("ix_fires_queued", "fire_time", sqlite_where=QUEUED_FIRE, postgresql_where=QUEUED_FIRE),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _seq(),
    sa.Column("key_id", Id, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(255), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("expires_at", Time, nullable=True),
    sa.Column("last_used_at", Time, nullable=True),
    sa.Column("revoked_at", Time, nullable=True),
    sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0"),  # migration 0007
)

audit = sa.Table(
    "audit",
    metadata,
    _seq(),
    sa.Column("audit_id", Id, nullable=False, unique=True),
    sa.Column("at", Time, nullable=False),
    sa.Column("key_name", sa.Text, nullable=True),
    sa.Column("role", sa.String(32), nullable=True),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("outcome", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)

# at most max_running tasks of a queue run at once, across every worker of the database
queue_limits = sa.Table(
    "queue_limits",
    metadata,
    sa.Column("queue", sa.String(255), primary_key=True),
    sa.Column("max_running", sa.Integer, nullable=False),
)

# an engine holding tasks' in-process functions proves it is alive until expires_at (migration 0009); swept_at: when
# another engine found the proof expired and began canceling its tasks (the holder learns of it at its next renewal)
holders = sa.Table(
    "holders",
    metadata,
    sa.Column("holder", sa.String(255), primary_key=True),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("swept_at", Time, nullable=True),
)
# the deadlines of tasks and runs that declared sla_seconds, written with them (migration 0012); a watcher of any
# process settles each once (outcome set by compare-and-set). The partial index holds only the unsettled ones
UNSETTLED_SLA = sa.text("outcome IS NULL")
sla_watches = sa.Table(
    "sla_watches",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("key", Id, primary_key=True),
    sa.Column("deadline", Time, nullable=False),
    sa.Column("sla_seconds", Time, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("settled_at", Time, nullable=True),
    sa.Index("ix_sla_watches_due", "deadline", sqlite_where=UNSETTLED_SLA, postgresql_where=UNSETTLED_SLA),
)
CHUNK = 500  # ids per IN (...) list

R = TypeVar("R")


class Codec(Generic[R]):
    """Converts one record type to and from rows of its table, encoding its JSON fields."""

    def __init__(
        self,
        cls: type[R],
        table: sa.Table,
        key: str,
        json_fields: Iterable[str],
        fixed: Iterable[str],
        packed: Mapping[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] | None = None,
    ):
        self.cls = cls
        self.table = table
        self.key = key
        self.names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        self._fields = operator.attrgetter(*self.names)  # every field in one call: a row per task is built on hot paths
        self.columns = [table.c[name] for name in self.names]
        self.json = frozenset(json_fields)
        self._json_names = tuple(n for n in self.names if n in self.json)
        self.fixed = frozenset(fixed)  # fields a change may not touch (keys, seq)
        self._changeable = frozenset(self.names) - self.fixed
        # JSON fields written in a shorter form (task specs without their defaults): packed before encoding,
        # unpacked after decoding
        self._packers = {name: pair[0] for name, pair in (packed or {}).items()}
        self._decoders: list[Callable[[Any], Any] | None] = [
            self._decoder((packed or {}).get(n)) if n in self.json else None for n in self.names
        ]
        self.select = sa.select(*self.columns)  # built once: building a 20-column select costs more than running it
        self.insert = sa.insert(table)
        self.by_key = self.select.where(table.c[key] == sa.bindparam("_key"))

    @staticmethod
    def _decoder(pair: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None) -> Callable[[Any], Any]:
        if pair is None:
            return from_json
        unpack = pair[1]
        return lambda text: None if text is None else unpack(from_json(text))

    def decode(self, name: str, text: str | None) -> Any:
        """The value of the JSON field ``name`` as stored in ``text``."""
        return self._decoders[self.names.index(name)](text)  # type: ignore[misc]

    def record(self, row: Iterable[Any]) -> R:
        """The record of a row selected as ``self.columns``."""
        return self.cls(*[dec(v) if dec else v for dec, v in zip(self._decoders, row, strict=True)])

    def row(self, record: R, skip: Iterable[str] = ()) -> dict[str, Any]:
        """The column values of ``record`` (JSON fields encoded), leaving out ``skip``."""
        values = dict(zip(self.names, self._fields(record), strict=True))
        key = values[self.key]
        for name in skip:
            del values[name]
        return self._encode(values, key)

    def changes(self, changes: Mapping[str, Any], key: str) -> dict[str, Any]:
        """Validated, encoded column values for an update of the record ``key``."""
        check_changes(changes, self._changeable, self.table.name, key)
        return self._encode(dict(changes), key)

    def _encode(self, values: dict[str, Any], key: str) -> dict[str, Any]:
        for name in self._json_names:
            if name in values:
                value = values[name]
                if name in self._packers and value is not None:
                    value = self._packers[name](value)
                try:
                    values[name] = to_json(value)
                except SerializationError:  # again, for the message naming the field (not built on every call)
                    to_json(value, f"{name} of {self.table.name} {key!r}")
                    raise
        return values


TASKS = Codec(TaskRecord, tasks, "id", ("spec", "dependencies", "result", "error", "metadata"), ("id", "seq"),
              packed={"spec": (spec_packing.pack, spec_packing.unpack)})  # fmt: skip
ATTEMPTS = Codec(AttemptRecord, attempts, "task_id", ("error",), ("task_id", "number"))
LOGS = Codec(LogRecord, logs, "task_id", (), ())
RUNS = Codec(RunRecord, runs, "run_id", ("params", "metadata"), ("run_id", "seq"))
SPEC_LISTS = {"tasks": (spec_packing.pack_all, spec_packing.unpack_all)}
WORKFLOWS = Codec(WorkflowRecord, workflows, "workflow_id", ("tasks",), ("workflow_id",), packed=SPEC_LISTS)
VERSIONS = Codec(VersionRecord, versions, "workflow_id", ("tasks",), ("workflow_id", "number"), packed=SPEC_LISTS)
ALERTS = Codec(AlertRecord, alerts, "alert_id", ("payload",), ("alert_id",))
ALERT_RULES = Codec(AlertRuleRecord, alert_rules, "rule_id", ("events", "channel"), ("rule_id",))
SCHEDULES = Codec(ScheduleRecord, schedules, "schedule_id", ("target",), ("schedule_id",))
FIRES = Codec(FireRecord, fires, "schedule_id", (), ("schedule_id", "fire_time"))
API_KEYS = Codec(ApiKeyRecord, api_keys, "key_id", (), ("key_id",))
AUDIT = Codec(AuditRecord, audit, "audit_id", (), ("audit_id",))
SLA_WATCHES = Codec(SlaWatchRecord, sla_watches, "key", (), ("kind", "key"))


# statements built once (building a many-column statement costs more than running it)
class ByIds(NamedTuple):
    """A statement for a list of ids, in two forms, each built once and run on the driver's cursor: ``array`` for
    PostgreSQL, ``= ANY`` of one array parameter (``_ids``), and ``json`` for SQLite, the list as one JSON array
    (``_ids_json``, read by ``json_each``). An ``IN`` list of bind parameters was rendered anew for every call, and
    psycopg converted every such new text again: 500 ids took 3.2 ms against 1.75 as an array, 100 ids 1.0 against
    0.5 (2026-11-30)."""

    array: sa.Select[Any] | sa.Update
    json: sa.Select[Any] | sa.Update


def by_ids(
    column: sa.ColumnElement[Any], build: Callable[[sa.ColumnElement[bool]], sa.Select[Any] | sa.Update]
) -> ByIds:
    """``build(condition)`` for ``column`` among the ids, in both forms."""
    in_array = column == sa.any_(sa.bindparam("_ids", type_=sa.ARRAY(column.type)))
    in_json = sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam("_ids_json")))
    return ByIds(build(in_array), build(column.in_(in_json.scalar_subquery())))


FIRST_EXISTING_TASK = by_ids(tasks.c.id, lambda matches: sa.select(tasks.c.id).where(matches).limit(1))
INSERT_TASKS = sa.insert(tasks).returning(tasks.c.id, tasks.c.seq)
INSERT_TASK_ROWS = sa.insert(tasks)  # SQLite's executemany and PostgreSQL's COPY return nothing: seqs are read after
LAST_SEQ = sa.select(sa.func.max(tasks.c.seq))
SEQS_ABOVE = sa.select(tasks.c.id, tasks.c.seq).where(tasks.c.seq > sa.bindparam("_seq"))
SEQS_OF = by_ids(tasks.c.id, lambda matches: sa.select(tasks.c.id, tasks.c.seq).where(matches))  # after a COPY
INSERT_DEPS = sa.insert(task_deps)
# PostgreSQL: tell listeners (postgres.Listener) that a task of a queue became claimable; delivered at commit.
# The store collects them during a transaction and sends each queue once, just before the commit. A payload
# "room:<queue>" says a limited queue has room again (or its limit changed): every listener acts on those, while
# plain ones are skipped by the process that sent them (its engine already woke its own workers).
# The channel is the schema's own (NOTIFY is database-wide): stores of different schemas of one database, such as
# tests or tenants, do not wake each other. A fixed-length name from the schema, as the listener computes it too.
CHANNEL_SQL = "'unified_tasks_' || left(md5(current_schema()), 16)"
CHANNEL = sa.literal_column(CHANNEL_SQL)
ROOM = "room:"
# Every wake-up of a transaction in one statement (one round trip), each payload once: queues with new work, the
# queues of tasks made claimable, room in the limited queues of tasks that stopped running, queues whose limit changed.
NOTIFY = sa.text(
    f"SELECT pg_notify({CHANNEL_SQL}, p) FROM (SELECT q AS p FROM unnest(CAST(:_queues AS text[])) AS q "
    "UNION SELECT queue FROM tasks WHERE id = ANY(CAST(:_claimable AS text[])) "
    f"UNION SELECT '{ROOM}' || t.queue FROM tasks t JOIN queue_limits l ON l.queue = t.queue "
    "WHERE t.id = ANY(CAST(:_room AS text[])) "
    f"UNION SELECT '{ROOM}' || q FROM unnest(CAST(:_limits AS text[])) AS q) AS payloads"
)
QUEUE_LIMITS = sa.select(queue_limits.c.queue, queue_limits.c.max_running).order_by(queue_limits.c.queue)
ANY_QUEUE_LIMIT = sa.select(queue_limits.c.queue).limit(1)
LOCK_QUEUE_LIMITS = QUEUE_LIMITS.with_for_update()
LOCK_QUEUE_LIMITS_OF = QUEUE_LIMITS.where(
    queue_limits.c.queue.in_(sa.bindparam("_queues", expanding=True))
).with_for_update()
# the reads of every finished task, built once: building a statement and its cache key costs more than running it
TASKS_BY_IDS = by_ids(tasks.c.id, TASKS.select.where)
MARK_GAINED = by_ids(
    tasks.c.id,
    lambda matches: (
        sa.update(tasks)
        .where(matches, tasks.c.state.in_(UNFINISHED_STATES), tasks.c.gained_dependants.is_(False))
        .values(gained_dependants=True)
    ),
)
LOCK_TASKS = by_ids(
    tasks.c.id, lambda matches: TASKS.select.where(matches).order_by(tasks.c.id).with_for_update(of=tasks)
)
DEPENDANTS = (
    TASKS.select.join(task_deps, task_deps.c.task_id == tasks.c.id)
    .where(task_deps.c.depends_on == sa.bindparam("_id"))
    .order_by(tasks.c.seq)
)


def locked_dependants(upstream: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The dependants whose task_deps row matches ``upstream``, locked in id order: their id, state and
    dependencies, then the upstream task each depends on."""
    return (
        sa.select(tasks.c.id, tasks.c.state, tasks.c.dependencies, task_deps.c.depends_on)
        .join(task_deps, task_deps.c.task_id == tasks.c.id)
        .where(upstream)
        .order_by(tasks.c.id)
        .with_for_update(of=tasks)
    )


LOCK_DEPENDANTS = locked_dependants(task_deps.c.depends_on == sa.bindparam("_id"))
LOCK_DEPENDANTS_IN = by_ids(task_deps.c.depends_on, locked_dependants)
LOCK_RUN = sa.select(runs.c.run_id).where(runs.c.run_id == sa.bindparam("_id")).with_for_update()
RUN_PROGRESS = (
    sa.select(tasks.c.state, sa.func.count()).where(tasks.c.run_id == sa.bindparam("_id")).group_by(tasks.c.state)
)
NEXT_NOT_BEFORE = (
    sa.select(sa.func.min(tasks.c.not_before))
    .where(sa.text(RETRYING_SQL))
    .with_hint(tasks, "INDEXED BY ix_tasks_not_before", "sqlite")
)
EXPIRED_LEASES = (
    TASKS.select.where(sa.text(RUNNING_SQL), tasks.c.lease_expires_at < sa.bindparam("_now"))
    .order_by(tasks.c.lease_expires_at, tasks.c.seq)
    .limit(sa.bindparam("_limit"))
    .with_hint(tasks, "INDEXED BY ix_tasks_lease", "sqlite")
)
LEASES_OF = (
    sa.select(tasks.c.id, tasks.c.attempts)
    .where(sa.text(RUNNING_SQL), tasks.c.lease_expires_at < sa.bindparam("_before"))
    .where(tasks.c.lease_owner == sa.bindparam("_worker"))
    .with_hint(tasks, "INDEXED BY ix_tasks_lease", "sqlite")
)
HELD_BY = (
    sa.select(tasks.c.id)
    .where(tasks.c.holder == sa.bindparam("_holder"), tasks.c.state.in_(UNFINISHED_STATES))
    .order_by(tasks.c.seq)
)
ATTEMPTS_OF = ATTEMPTS.select.where(attempts.c.task_id == sa.bindparam("_id")).order_by(attempts.c.number)
# a task and its attempts in one read (the attempt columns are NULL for a task without any)
TASK_WITH_ATTEMPTS = (
    sa.select(*TASKS.columns, *ATTEMPTS.columns)
    .select_from(tasks.outerjoin(attempts, attempts.c.task_id == tasks.c.id))
    .where(tasks.c.id == sa.bindparam("_key"))
    .order_by(attempts.c.number)
)
ATTEMPTS_OF_IDS = by_ids(
    attempts.c.task_id, lambda matches: ATTEMPTS.select.where(matches).order_by(attempts.c.task_id, attempts.c.number)
)
VERSION_BY_NUMBER = VERSIONS.by_key.where(versions.c.number == sa.bindparam("_number"))
LOGS_OF = LOGS.select.where(logs.c.task_id == sa.bindparam("_id")).order_by(logs.c.ts, logs.c.seq)
