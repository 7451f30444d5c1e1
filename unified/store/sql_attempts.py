"""The SQL store's attempts and log lines: the record of each try of a task and what it printed.

A mixin of :class:`unified.store.sql.SqlStore`, using its transaction and row helpers. The ends of a batch's
attempts, written with their tasks' moves, are in sql_outcomes.py (``finish_attempts``, ``apply_outcomes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from unified.errors import not_found
from unified.store.records import AttemptRecord, LogRecord, TaskRecord
from unified.store.schema import (
    ATTEMPTS,
    ATTEMPTS_OF,
    ATTEMPTS_OF_IDS,
    CHUNK,
    LOGS,
    LOGS_OF,
    TASK_WITH_ATTEMPTS,
    TASKS,
    ByIds,
    Codec,
)
from unified.store.sql_direct import DirectStatements
from unified.utils import chunks


class SqlAttempts:
    """Attempts and log lines, as rows of their tables."""

    _direct: DirectStatements

    if TYPE_CHECKING:  # provided by SqlStore

        def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]: ...
        def _all(self, codec: Codec[Any], stmt: sa.Select[Any], params: dict[str, Any] | None = None) -> list[Any]: ...
        def _insert(
            self, codec: Codec[Any], rows: list[dict[str, Any]], duplicate: str, parent: str = "", isolated: bool = True
        ) -> None: ...
        def _update(
            self, codec: Codec[Any], where: dict[str, Any], keys: int, values: dict[str, Any], what: str
        ) -> bool: ...
        def _rows_by_ids(
            self, conn: sa.Connection, statement: ByIds, ids: list[str], params: dict[str, Any] | None = None
        ) -> list[Any]: ...

    def insert_attempt(self, attempt: AttemptRecord) -> None:
        """Record the start of an attempt."""
        duplicate = f"attempt {attempt.number} of task {attempt.task_id!r}"
        self._insert(ATTEMPTS, [ATTEMPTS.row(attempt)], duplicate, f"task {attempt.task_id!r}")

    def finish_attempt(self, task_id: str, number: int, *, if_running: bool = False, **changes: Any) -> bool:
        """Set the outcome fields of an attempt (with ``if_running``, only while it runs); True if set."""
        what = f"attempt {number} of task {task_id!r}"
        where = {"task_id": task_id, "number": number, **({"state": "running"} if if_running else {})}
        return self._update(ATTEMPTS, where, 2, ATTEMPTS.changes(changes, task_id), what)

    def list_attempts(self, task_id: str) -> list[AttemptRecord]:
        """The attempts of a task, by number."""
        return self._all(ATTEMPTS, ATTEMPTS_OF, {"_id": task_id})

    def task_with_attempts(self, task_id: str) -> tuple[TaskRecord, list[AttemptRecord]]:
        """The task with this global id and its attempts by number, in one query."""
        with self._tx(write=False) as conn:
            rows = self._direct.rows(conn, TASK_WITH_ATTEMPTS, {"_key": task_id})
        if not rows:
            raise not_found(f"task {task_id!r}")
        split = len(TASKS.columns)
        return TASKS.record(rows[0][:split]), [ATTEMPTS.record(row[split:]) for row in rows if row[split] is not None]

    def attempts_of(self, task_ids: Iterable[str]) -> dict[str, list[AttemptRecord]]:
        """The attempts of each of these tasks, by number (tasks without attempts are left out)."""
        found: dict[str, list[AttemptRecord]] = {}
        with self._tx(write=False) as conn:
            ids = list(dict.fromkeys(task_ids))
            rows = [row for chunk in chunks(ids, CHUNK) for row in self._rows_by_ids(conn, ATTEMPTS_OF_IDS, chunk)]
        for attempt in map(ATTEMPTS.record, rows):
            found.setdefault(attempt.task_id, []).append(attempt)
        return found

    def append_logs(self, lines: Iterable[LogRecord]) -> None:
        """Store captured log lines."""
        self._insert(LOGS, [LOGS.row(line) for line in lines], "a log line", "task for these log lines")

    def get_logs(self, task_id: str) -> list[LogRecord]:
        """The log lines of a task, oldest first."""
        return self._all(LOGS, LOGS_OF, {"_id": task_id})
