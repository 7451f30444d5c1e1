"""The SQL store: every verb of the Store protocol on SQLAlchemy Core, the same code for PostgreSQL and SQLite.

It owns transactions (a re-entrant, per-thread ``atomic()``), the claim query (one ``UPDATE ... RETURNING`` whose
subquery takes ``FOR UPDATE SKIP LOCKED`` rows on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``, see
sqlite.py), translation of database errors into the unified error tree, and bringing the schema to the Alembic head.
The verbs of the records around the work (schedules and fires, alert rules, API keys, audit log) are in the
``SqlAdminRecords`` mixin of sql_admin.py, those of alerts and SLA watches in ``SqlAlerts`` (sql_alerts.py), those of
attempts and log lines in ``SqlAttempts`` (sql_attempts.py), on the row helpers defined here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from unified.errors import ConflictError, DuplicateTaskError, NotFoundError, StoreError, ValidationError, not_found
from unified.store import migrations
from unified.store.cas_statements import exists_statement, update_statement
from unified.store.records import CLAIMABLE_STATES, RunRecord, TaskRecord
from unified.store.schema import (
    ANY_QUEUE_LIMIT,
    CHANNEL,
    CHUNK,
    DEPENDANTS,
    FIRST_EXISTING_TASK,
    INSERT_DEPS,
    INSERT_TASK_ROWS,
    INSERT_TASKS,
    LOCK_RUN,
    NEXT_NOT_BEFORE,
    NOTIFY,
    RUN_PROGRESS,
    RUNS,
    SEQS_OF,
    TASKS,
    TASKS_BY_IDS,
    ByIds,
    Codec,
    task_deps,
    tasks,
)
from unified.store.sql_admin import SqlAdminRecords
from unified.store.sql_alerts import SqlAlerts
from unified.store.sql_attempts import SqlAttempts
from unified.store.sql_claim import SqlClaims
from unified.store.sql_direct import COPY_MIN, DirectStatements
from unified.store.sql_errors import checkout, database_errors
from unified.store.sql_holders import SqlHolders
from unified.store.sql_outcomes import SqlOutcomes, cas_where
from unified.store.sql_wakeups import LimitsSeen, Wakeups
from unified.store.sql_workflows import SqlWorkflows
from unified.utils import chunks, to_json

READ_ONLY = "unified_read_only"  # execution option: a read outside atomic(); SQLite then skips BEGIN IMMEDIATE
MIGRATION_LOCK = 7_415_532  # PostgreSQL advisory lock key: one process migrates at a time


def driver_url(url: str) -> str:
    """``url`` with the psycopg 3 driver named for plain ``postgresql://`` and ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class _Joined:
    """The thread's open transaction entered again by another verb: most of a task's statements run in one (16
    entries per chain step), and a plain class costs half what a generator-based context manager does. One per
    transaction, entered as often as verbs join it (the depth is the thread's)."""

    __slots__ = ("_conn", "_local")

    def __init__(self, local: threading.local, conn: sa.Connection) -> None:
        self._local = local
        self._conn = conn

    def __enter__(self) -> sa.Connection:
        self._local.depth += 1
        return self._conn

    def __exit__(self, *exc_info: object) -> None:
        self._local.depth -= 1


def _fk_violation(exc: sa.exc.IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "23503" or "FOREIGN KEY" in str(exc.orig)


class SqlStore(SqlClaims, SqlOutcomes, SqlAttempts, SqlAdminRecords, SqlAlerts, SqlWorkflows, SqlHolders):
    """A store on a SQLAlchemy URL; ``SqlStore("sqlite:///...")`` gives a :class:`SqliteStore`."""

    keeps_objects = False
    # True on PostgreSQL (set in __init__): its one-statement outcome reads a task's dependants with the snapshot it
    # began with, so a task added on it meanwhile is marked for it (see SqlOutcomes.lock_tasks)
    may_miss_new_dependants = False
    statement_rollback = False  # True where a failed statement undoes only itself and the transaction goes on
    # compare-and-sets alike but for the id as one statement (see SqlOutcomes.update_tasks): on PostgreSQL 32 of them
    # took 1.74 ms against 2.23 as an executemany; SQLite runs a prepared update by key faster than it reads ids
    # from JSON (0.63 against 0.57 ms, commit included), so it keeps the executemany
    set_wise_updates = True

    def __new__(cls, url: str, **engine_options: Any) -> SqlStore:
        """Pick SqliteStore for SQLite URLs, so both classes open any supported URL."""
        if cls is SqlStore and url.startswith("sqlite"):
            from unified.store.sqlite import SqliteStore

            cls = SqliteStore
        return super().__new__(cls)

    def __init__(self, url: str, *, create: bool = True, **engine_options: Any) -> None:
        """Open the database at ``url``, making or upgrading unified's tables in it; with ``create=False`` a database
        without them is refused (a ValidationError) rather than given them (a reading command's mistyped URL)."""
        self.url = url
        self._local = threading.local()
        try:
            self._engine = self._create_engine(driver_url(url), engine_options)
        except sa.exc.ArgumentError as exc:
            raise ValidationError(f"{url!r} is not a database URL ({exc}): use sqlite:///path/to/file.db or "
                                  "postgresql://user@host/db") from None  # fmt: skip
        self._safe_url = self._engine.url.render_as_string(hide_password=True)
        self._upsert_insert = sqlite.insert if self._engine.dialect.name == "sqlite" else postgresql.insert
        self._notifies = self._engine.dialect.name == "postgresql"  # NOTIFY listeners when work becomes claimable
        self.may_miss_new_dependants = self._notifies  # its one-statement outcome (SqlOutcomes.apply_outcomes)
        self._json_ids = self._engine.dialect.name == "sqlite"  # lists of ids as JSON parameters (schema.ByIds)
        self._backend_pids: set[int] = set()  # PostgreSQL: this store's sessions, whose notifications it skips
        # reads outside a transaction, and PostgreSQL's one-statement writes (see _autocommit): on PostgreSQL each
        # statement commits on its own (no BEGIN and ROLLBACK round trips). A second pool kept in autocommit, to save
        # switching a connection on every checkout, was tried: no faster for W1 and 10% slower for W2
        self._reads = self._engine.execution_options(
            **{READ_ONLY: True}, **({"isolation_level": "AUTOCOMMIT"} if self._notifies else {})
        )
        if self._notifies:
            from unified.store.postgres import track_sessions

            self._backend_pids = track_sessions(self._engine)
        self._direct = DirectStatements(self._engine.dialect)
        self._limits_seen = LimitsSeen(lambda conn: bool(self._direct.rows(conn, ANY_QUEUE_LIMIT, {})))
        self._insert_new_task = (
            self._upsert_insert(tasks)
            .values({name: sa.bindparam(name) for name in TASKS.names if name != "seq"})
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(tasks.c.id, tasks.c.seq)
        )
        # PostgreSQL: the same insert announcing its task itself, for one that is its own transaction
        notify = sa.func.pg_notify(CHANNEL, tasks.c.queue)
        self._insert_new_task_notifying = self._insert_new_task.returning(notify) if self._notifies else None
        try:
            with self._wrap_errors():
                self._migrate(create)
        except BaseException:
            self.close()
            raise

    def _create_engine(self, url: str, options: dict[str, Any]) -> sa.Engine:
        """The engine for ``url`` (PostgreSQL; SqliteStore adds its pragmas and transaction hooks).

        Pooled connections the server dropped (a restart, a terminated session) are replaced on checkout instead of
        failing the next transaction, without a round trip per checkout (see ``postgres.replace_dropped``);
        SQLAlchemy also discards the whole pool on a disconnect error. Each session plans the claim as a walk of its
        index, whatever the table's statistics say (see ``postgres.plan_claims_by_index``).
        """
        from unified.store.postgres import connection_defaults, plan_claims_by_index, replace_dropped

        connect_args = {**connection_defaults(sa.make_url(url)), **options.pop("connect_args", {})}
        engine = sa.create_engine(url, **{"pool_size": 10, "max_overflow": 40, "connect_args": connect_args, **options})
        replace_dropped(engine)
        plan_claims_by_index(engine)
        return engine

    def _migrate(self, create: bool = True) -> None:
        with self._engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            try:
                current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            except sa.exc.DBAPIError:
                current = None
        if current == migrations.HEAD:
            return
        if current is not None and current > migrations.HEAD:  # zero-padded numbers: their order is the history's
            raise StoreError(
                f"{self._safe_url} is at schema revision {current}, newer than this version of unified knows "
                f"({migrations.HEAD}): a newer unified upgraded it; install that version of unified here too"
            )
        if current is None and not create:
            raise ValidationError(
                f"{self._safe_url} holds no unified tables: check the URL, or create them with `unified db upgrade` "
                "(a server started on it does too)"
            )
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            migrations.upgrade(conn)

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()

    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(queue)`` from a thread when a task of ``queue`` may have become claimable (``""``: any
        queue); returns the function that stops listening (PostgreSQL: LISTEN/NOTIFY; SQLite: a watcher thread)."""
        from unified.store.postgres import Listener, libpq_url

        # a room payload may mean a limit changed elsewhere: look again rather than wait for the recheck
        on_room = self._limits_seen.forget
        return Listener(libpq_url(self._engine.url), callback, self._safe_url, self._backend_pids, on_room).stop

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._safe_url!r})"

    # transactions
    def _wrap_errors(self) -> AbstractContextManager[None]:
        return database_errors(self._safe_url)

    def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]:
        """The thread's open transaction, or a new one (a read outside atomic() needs no transaction)."""
        joined: _Joined | None = getattr(self._local, "joined", None)
        if joined is not None:
            return joined
        return self._new_tx(write)

    @contextmanager
    def _new_tx(self, write: bool) -> Iterator[sa.Connection]:
        local = self._local
        if not write:
            with self._wrap_errors(), checkout(self._reads, self._safe_url) as conn:
                yield conn
            return
        local.wakeups, local.deferred = Wakeups(), []
        with self._wrap_errors(), self._write_transaction() as conn:
            local.conn, local.depth, local.joined = conn, 0, _Joined(local, conn)
            try:
                yield conn
            finally:
                local.conn = local.joined = None

    def _rows_by_ids(
        self, conn: sa.Connection, statement: ByIds, ids: list[str], params: dict[str, Any] | None = None
    ) -> list[Any]:
        """The rows ``statement`` reads (or returns) for ``ids`` (at most CHUNK) and its other ``params``: on SQLite the
        ids go as one JSON parameter."""
        if self._json_ids:
            return self._direct.rows(conn, statement.json, {**(params or {}), "_ids_json": to_json(ids)})
        return self._direct.rows(conn, statement.array, {**(params or {}), "_ids": ids})

    def _write_later(self, conn: sa.Connection, statement: sa.Executable, rows: list[dict[str, Any]]) -> None:
        """A write whose outcome nobody reads in the transaction: on PostgreSQL it waits to go with the COMMIT (one
        round trip for all of them), elsewhere it runs now. Only :meth:`savepoint` takes it back with a rollback: no
        verb that may fail inside a savepoint of its own (``_savepoint``) writes this way."""
        if self._notifies:
            self._local.deferred.append((statement, rows))
        else:
            self._direct.update_many(conn, statement, rows)

    def _wake(
        self,
        queues: Iterable[str] = (),
        claimable: Iterable[str] = (),
        room: Iterable[str] = (),
        limits: Iterable[str] = (),
    ) -> None:
        """Inside a write transaction: tell listeners at commit that work of these queues (or of the queues of these
        task ids) may be claimable, that these tasks left a limited queue, or that these queues' limits changed.
        Only PostgreSQL has listeners."""
        if self._notifies:
            wakeups = self._local.wakeups
            wakeups.queues.update(queues)
            wakeups.claimable.update(claimable)
            wakeups.room.update(room)
            wakeups.limits.update(limits)

    @contextmanager
    def _write_transaction(self) -> Iterator[sa.Connection]:
        """A pooled connection in a write transaction, committed when the block ends (SQLite shares commits).

        On PostgreSQL the deferred writes, the NOTIFY of the transaction's wake-ups and its COMMIT go in one round
        trip (SQLAlchemy's commit then has nothing left to do); a transaction with neither commits as usual."""
        with checkout(self._engine, self._safe_url) as conn, conn.begin():
            yield conn
            deferred = self._local.deferred
            if self._notifies:
                wakeups = self._local.wakeups
                if wakeups.room and not self._limits_seen.any(conn):
                    wakeups.room.clear()  # no queue is limited, so nobody waits for room
                if (notify := wakeups.notify()) is not None:
                    deferred.append((NOTIFY, [notify]))
            if deferred:
                self._direct.commit_with(conn, deferred)

    def _autocommit(self) -> AbstractContextManager[sa.Connection] | None:
        """PostgreSQL outside a caller's transaction: a pooled connection on which each statement commits on its
        own, for a verb that is one statement (its BEGIN and COMMIT would be two more round trips); else None."""
        if not self._notifies or getattr(self._local, "conn", None) is not None:
            return None
        with self._wrap_errors():  # a connection made here fails as the verb's statements would
            return checkout(self._reads, self._safe_url)

    @contextmanager
    def _savepoint(self, conn: sa.Connection, statements: int = 2) -> Iterator[None]:
        """Inside a caller's atomic(), undo only this verb's writes if it fails (PostgreSQL would abort them all).

        ``statements``: how many the verb runs. A database that rolls back just the failed statement (SQLite) needs
        no savepoint for one, which saves two statements on every task queued inside a batch.
        """
        if self._local.depth and not (statements == 1 and self.statement_rollback):
            with conn.begin_nested():
                yield
        else:
            yield

    def atomic(self) -> AbstractContextManager[Any]:
        """Group the verbs called inside into one transaction (re-entrant within a thread)."""
        return self._tx()  # no generator of its own around it: engine batches enter it several times per task

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """As atomic(); inside a transaction, the block's writes are undone alone if it raises (with those it left to
        go with the COMMIT, see _write_later)."""
        with self._tx() as conn, self._wrap_errors():
            if not self._local.depth:
                yield
                return
            deferred = self._local.deferred
            kept = len(deferred)
            try:
                with self._direct.savepoint(conn):
                    yield
            except BaseException:
                del deferred[kept:]
                raise

    # generic helpers
    def _one(self, codec: Codec[Any], what: str, stmt: sa.Select[Any], params: dict[str, Any]) -> Any:
        with self._tx(write=False) as conn:
            rows = self._direct.rows(conn, stmt, params)
        if not rows:
            raise not_found(what)
        return codec.record(rows[0])

    def _all(self, codec: Codec[Any], stmt: sa.Select[Any], params: dict[str, Any] | None = None) -> list[Any]:
        """The records ``stmt`` selects; with ``params``, ``stmt`` is a prebuilt statement run directly."""
        with self._tx(write=False) as conn:
            rows = conn.execute(stmt) if params is None else self._direct.rows(conn, stmt, params)
            return [codec.record(row) for row in rows]

    def _insert(
        self, codec: Codec[Any], rows: list[dict[str, Any]], duplicate: str, parent: str = "", isolated: bool = True
    ) -> None:
        """Insert ``rows``; ``isolated``: in a savepoint, so a failure leaves the caller's transaction usable."""
        if not rows:
            return
        with self._tx() as conn, self._savepoint(conn, len(rows)) if isolated else nullcontext():
            try:
                self._direct.insert_many(conn, codec.insert, rows)
            except sa.exc.IntegrityError as exc:
                if parent and _fk_violation(exc):
                    raise NotFoundError(f"no {parent}: create it first") from exc
                raise ConflictError(f"{duplicate} already exists") from exc

    def _update(self, codec: Codec[Any], where: dict[str, Any], keys: int, values: dict[str, Any], what: str) -> bool:
        """Apply ``values`` to the row matching ``where``; NotFoundError if none matches its first ``keys`` fields."""
        conditions = tuple(where)
        params = {f"_w_{name}": value for name, value in where.items()}
        direct = self._direct
        with self._tx() as conn:
            if values:
                params.update({f"_v_{name}": value for name, value in values.items()})
                if direct.rowcount(conn, update_statement(codec.table, tuple(values), conditions), params) == 1:
                    return True
            elif direct.rows(conn, exists_statement(codec.table, conditions), params):
                return True
            if not direct.rows(conn, exists_statement(codec.table, conditions[:keys]), params):
                raise not_found(what)
            return False

    def _cas(self, codec: Codec[Any], key: str, expected_state: str | None, changes: dict[str, Any]) -> bool:
        where = {codec.key: key} if expected_state is None else {codec.key: key, "state": expected_state}
        return self._update(codec, where, 1, codec.changes(changes, key), f"{codec.table.name[:-1]} {key!r}")

    def _upsert(self, codec: Codec[Any], record: Any, keep: tuple[str, ...] = ()) -> None:
        """Insert ``record``, or replace the fields of the row with its key, all but ``keep`` (and the row's seq)."""
        row = codec.row(record)
        stmt = self._upsert_insert(codec.table).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[codec.key],
            set_={name: stmt.excluded[name] for name in row if name != codec.key and name not in keep},
        )
        with self._tx() as conn, self._savepoint(conn, 1):
            conn.execute(stmt)

    def _one_row(self, codec: Codec[Any], key: str, what: str, stmt: sa.Update | sa.Delete | None = None) -> None:
        """Run ``stmt`` (an UPDATE or DELETE of ``codec``'s table; a DELETE when None) on the row with this key;
        NotFoundError if there is none."""
        table = codec.table
        stmt = (stmt if stmt is not None else sa.delete(table)).where(table.c[codec.key] == key)
        with self._tx() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise not_found(f"{what} {key!r}")

    # runs
    def insert_run(self, run: RunRecord) -> None:
        """Store a new run, setting its ``seq``."""
        stmt = RUNS.insert.values(RUNS.row(run, skip=("seq",))).returning(RUNS.table.c.seq)
        with self._tx() as conn, self._savepoint(conn, 1):
            try:
                run.seq = conn.execute(stmt).scalar_one()
            except sa.exc.IntegrityError as exc:
                raise ConflictError(f"run {run.run_id!r} already exists") from exc

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id."""
        return self._one(RUNS, f"run {run_id!r}", RUNS.by_key, {"_key": run_id})

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
        """Runs, newest first, optionally filtered (``since``: created at or after; ``before``: a keyset cursor)."""
        c = RUNS.table.c
        stmt = RUNS.select.order_by(c.created_at.desc(), c.seq.desc()).limit(limit).offset(offset)
        if before is not None:
            created, seq = before
            stmt = stmt.where(sa.or_(c.created_at < created, sa.and_(c.created_at == created, c.seq < seq)))
        for column, value in ((c.workflow_id, workflow_id), (c.state, state), (c.schedule_id, schedule_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(c.created_at >= since)
        return self._all(RUNS, stmt)

    def update_run(self, run_id: str, expected_state: str | None, **changes: Any) -> bool:
        """Set fields of a run if its state is ``expected_state`` (None: any); True if it changed."""
        return self._cas(RUNS, run_id, expected_state, changes)

    # tasks
    def insert_tasks(self, tasks: Iterable[TaskRecord]) -> None:
        """Store new tasks in one transaction, assigning ``seq``; an existing id raises DuplicateTaskError."""
        records = list(tasks)
        if not records:
            return
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            clash = next(i for n, i in enumerate(ids) if i in ids[:n])
            raise DuplicateTaskError(f"task id {clash!r} appears twice in one batch: give each task its own id")
        rows = [TASKS.row(r, skip=("seq",)) for r in records]
        deps = [{"task_id": r.id, "depends_on": d} for r in records for d in dict.fromkeys(r.dependencies)]
        if len(records) == 1 and not deps:
            self._insert_one_task(records[0], rows[0])
            return
        statements = 1 + (len(ids) > 1) + bool(deps)
        with self._tx() as conn, self._savepoint(conn, statements):
            for chunk in chunks(ids, CHUNK) if len(ids) > 1 else ():  # one id: the primary key names the clash
                if found := self._rows_by_ids(conn, FIRST_EXISTING_TASK, chunk):
                    clash = found[0][0]
                    raise DuplicateTaskError(f"a task with id {clash!r} already exists: choose another task_id")
            try:
                seqs = self._insert_task_rows(conn, rows)
                if deps:
                    self._direct.insert_many(conn, INSERT_DEPS, deps)
                self._wake(queues=(r.queue for r in records if r.state in CLAIMABLE_STATES))
            except sa.exc.IntegrityError as exc:  # a concurrent insert of the same id
                if len(ids) == 1:
                    raise DuplicateTaskError(f"a task with id {ids[0]!r} already exists: choose another") from exc
                raise DuplicateTaskError(f"a task id among {ids[:3]}... already exists: choose others") from exc
        for record in records:
            record.seq = seqs[record.id]

    def _insert_task_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert task rows (their ids checked free); the seq given to each, by id. Many rows on PostgreSQL go by
        COPY, and their seqs are read back by id: together half the time of an INSERT ... RETURNING per row."""
        if len(rows) < COPY_MIN or not self._direct.copies:
            return dict(self._direct.insert_returning(conn, INSERT_TASKS, rows))
        self._direct.copy_in(conn, INSERT_TASK_ROWS, rows)
        ids = [row["id"] for row in rows]
        return dict(row for chunk in chunks(ids, CHUNK) for row in self._rows_by_ids(conn, SEQS_OF, chunk))

    def _insert_one_task(self, record: TaskRecord, row: dict[str, Any]) -> None:
        """One task without dependencies, as one statement that skips a clashing id instead of failing: nothing
        to undo then, so no savepoint is needed inside a caller's transaction (two round trips fewer per task).

        On PostgreSQL outside a caller's transaction, that statement is the whole transaction (autocommit) and
        sends its own wake-up (``pg_notify`` in RETURNING): one round trip instead of BEGIN, INSERT, NOTIFY, COMMIT.
        """
        claimable = record.state in CLAIMABLE_STATES
        if (alone := self._autocommit()) is not None:
            with self._wrap_errors(), alone as conn:
                statement = self._insert_new_task_notifying if claimable else self._insert_new_task
                inserted = self._direct.rows(conn, statement, row)
        else:
            with self._tx() as conn:
                inserted = self._direct.rows(conn, self._insert_new_task, row)
                self._wake(queues=[record.queue] if claimable and inserted else [])
        if not inserted:
            raise DuplicateTaskError(f"a task with id {record.id!r} already exists: choose another task_id")
        record.seq = inserted[0][1]

    def get_task(self, task_id: str) -> TaskRecord:
        """The task with this global id."""
        return self._one(TASKS, f"task {task_id!r}", TASKS.by_key, {"_key": task_id})

    def get_tasks(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        """The tasks with these ids that exist, in no particular order."""
        ids = list(dict.fromkeys(task_ids))
        if len(ids) == 1:  # the usual case (one upstream task): no IN list to render
            return self._all(TASKS, TASKS.by_key, {"_key": ids[0]})
        with self._tx(write=False) as conn:
            rows = [row for chunk in chunks(ids, CHUNK) for row in self._rows_by_ids(conn, TASKS_BY_IDS, chunk)]
        return [TASKS.record(row) for row in rows]

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
        c = tasks.c
        stmt = TASKS.select.order_by(c.seq.desc()).limit(limit).offset(offset)
        for column, value in ((c.state, state), (c.run_id, run_id), (c.schedule_id, schedule_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        if before_seq is not None:
            stmt = stmt.where(c.seq < before_seq)
        return self._all(TASKS, stmt)

    def run_tasks(self, run_id: str) -> list[TaskRecord]:
        """Every task of a run, in insertion order."""
        return self._all(TASKS, TASKS.select.where(tasks.c.run_id == run_id).order_by(tasks.c.seq))

    def lock_run(self, run_id: str) -> None:
        """Lock the run's row FOR UPDATE until the transaction ends."""
        with self._wrap_errors(), self._tx() as conn:
            if conn.execute(LOCK_RUN, {"_id": run_id}).first() is None:
                raise not_found(f"run with id {run_id!r}")

    def run_progress(self, run_id: str) -> dict[str, int]:
        """How many tasks of a run are in each state."""
        with self._tx(write=False) as conn:
            return {state: count for state, count in conn.execute(RUN_PROGRESS, {"_id": run_id})}

    def dependants(self, task_id: str) -> list[TaskRecord]:
        """The tasks that list ``task_id`` among their dependencies."""
        return self._all(TASKS, DEPENDANTS, {"_id": task_id})

    def update_task(
        self, task_id: str, expected_state: str | None, expected_attempt: int | None = None, **changes: Any
    ) -> bool:
        """Compare-and-set: apply ``changes`` if the state is ``expected_state`` (None: any) and, when given,
        ``attempts`` equals ``expected_attempt`` (the fencing token of a claim). True if it changed."""
        values = TASKS.changes(changes, task_id)
        where = cas_where(task_id, expected_state, expected_attempt)
        with self._tx() as conn:
            changed = self._update(TASKS, where, 1, values, f"task {task_id!r}")
            if changed and "dependencies" in changes:
                conn.execute(sa.delete(task_deps).where(task_deps.c.task_id == task_id))
                deps = [{"task_id": task_id, "depends_on": d} for d in dict.fromkeys(changes["dependencies"])]
                if deps:
                    conn.execute(sa.insert(task_deps), deps)
            if changed:
                self._wake_moved(task_id, expected_state, changes)
        return changed

    def next_not_before(self) -> float | None:
        """The earliest not_before among retrying tasks, or None."""
        with self._tx(write=False) as conn:
            return self._direct.rows(conn, NEXT_NOT_BEFORE, {})[0][0]

    def count_tasks_by_state(self) -> dict[str, int]:
        """How many tasks are in each state."""
        stmt = sa.select(tasks.c.state, sa.func.count()).group_by(tasks.c.state)
        with self._tx(write=False) as conn:
            return {state: count for state, count in conn.execute(stmt)}
