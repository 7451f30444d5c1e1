"""The SQLite store: SqlStore plus what a file database needs to be durable and safe under threads and processes.

WAL mode (readers never block the writer), ``synchronous=FULL`` by default (an acknowledged write survives power
loss; each commit then waits for one fsync),
a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for every write transaction, so two claimers (threads or
processes) are serialised before they read what they will update. Reads outside ``atomic()`` run without a
transaction of their own (a single SELECT is consistent in SQLite).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

from unified.errors import ValidationError
from unified.store.group_commit import GroupCommit
from unified.store.schema import INSERT_TASK_ROWS, LAST_SEQ, SEQS_ABOVE
from unified.store.sql import READ_ONLY, SqlStore
from unified.store.sqlite_watch import Watcher

BUSY_TIMEOUT_MS = 30_000
SYNCHRONOUS = ("EXTRA", "FULL", "NORMAL")  # NORMAL: a crash of the machine may lose the newest commits, never corrupt


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///path.db`` URL; in-memory databases are refused."""
    try:
        database = sa.engine.make_url(url).database
    except sa.exc.ArgumentError:
        raise ValidationError(f"{url!r} is not a database URL: use sqlite:///path/to/file.db") from None
    if not database or database == ":memory:" or "mode=memory" in url:
        raise ValidationError(
            f"{url!r} is an in-memory SQLite database, which threads cannot share safely: "
            "use memory:// for a store that lives in this process, or sqlite:///path/to/file.db"
        )
    return Path(database)


class _HintingCompiler(SQLiteCompiler):
    """Renders ``with_hint`` texts after table names, for SQLite's ``INDEXED BY``."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        """The hint text as written."""
        return text


def _on_connect(dbapi_connection: Any, _record: Any, synchronous: str) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's begin hook below emits BEGIN, not the sqlite3 module
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_begin(connection: sa.Connection) -> None:
    if connection.get_execution_options().get(READ_ONLY):
        return
    # on the driver's connection: through SQLAlchemy's execution this one statement cost more than the rest of a
    # short write transaction (about 40 us of its 55)
    try:
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    except sqlite3.Error as exc:  # as SQLAlchemy would raise it, so the store's error handling applies
        raise sa.exc.DBAPIError.instance("BEGIN IMMEDIATE", (), exc, sqlite3.Error, dialect=connection.dialect) from exc


class SqliteStore(SqlStore):
    """A store in one SQLite file, shared safely by threads and processes."""

    _group: GroupCommit
    statement_rollback = True  # a constraint error aborts the statement, not the transaction
    serial_writes = True  # one writer at a time, each commit a sync: see unified.store.base
    set_wise_updates = False

    def __init__(self, url: str, *, synchronous: str = "FULL", create: bool = True, **engine_options: Any) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValidationError(f"synchronous={synchronous!r} is not one of {', '.join(SYNCHRONOUS)}")
        self.synchronous = synchronous.upper()
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(url, create=create, **engine_options)

    def _write_transaction(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction on this process's one write connection, whose commit it may share with the other
        threads' (see unified.store.group_commit).

        SQLite lets one writer in; the others' ``BEGIN IMMEDIATE`` sleeps in steps of milliseconds until the file is
        free, far longer than a commit takes. Threads of one process take turns instead and never meet that sleep;
        other processes still wait through ``busy_timeout``. The turn always uses the same connection: a SQLite
        connection drops its page cache whenever another connection wrote the file, so writers on pooled
        connections would read back every page they touch (about twenty reads per task transaction).
        """
        return self._group.transaction()

    def _insert_task_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        """One ``executemany`` (SQLite's cannot return rows), then the seqs read back: every seq above the largest
        before the insert is one of these rows, since this transaction holds the only write turn and AUTOINCREMENT
        never hands out a seq twice. About three times faster than SQLAlchemy's INSERT ... RETURNING batches."""
        before = conn.execute(LAST_SEQ).scalar() or 0
        self._direct.insert_many(conn, INSERT_TASK_ROWS, rows)
        return dict(self._direct.rows(conn, SEQS_ABOVE, {"_seq": before}))

    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback("")`` from a thread when another connection's commit left a task claimable (SQLite has no
        NOTIFY: see unified.store.sqlite_watch); returns the function that stops watching."""
        return Watcher(sqlite_path(self.url), callback).stop

    def close(self) -> None:
        """Release the write connection and the pooled ones."""
        self._group.close()
        super().close()

    def _create_engine(self, url: str, options: dict[str, Any]) -> sa.Engine:
        """An engine whose connections use WAL, full sync, foreign keys and BEGIN IMMEDIATE writes."""
        engine = sa.create_engine(
            url,
            **{
                "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                "poolclass": sa.pool.QueuePool,
                "pool_size": 16,
                "max_overflow": 64,
                **options,
            },
        )
        engine.dialect.statement_compiler = _HintingCompiler
        sa.event.listen(engine, "connect", functools.partial(_on_connect, synchronous=self.synchronous))
        sa.event.listen(engine, "begin", _on_begin)
        self._group = GroupCommit(engine.connect, BUSY_TIMEOUT_MS / 1000, engine.url.render_as_string(True))
        return engine
