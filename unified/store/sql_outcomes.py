"""The SQL store's verbs for applying a batch of attempt outcomes with a few statements instead of a few per task.

A worker reports the attempts that finished meanwhile in one transaction (group commit). These verbs let the engine
apply them set-wise: one compare-and-set per set of changed fields (:meth:`SqlOutcomes.update_tasks`; on PostgreSQL
an ``executemany`` that returns each row count, in one round trip), the dependants of every task that succeeded read
and locked by one query, and the ends of the attempts written by one ``executemany``.
"""

from __future__ import annotations

from typing import Any

from unified.errors import ValidationError
from unified.store.base import apply_outcomes_in_turn
from unified.store.cas_statements import (
    ATTEMPT_MATCH,
    END_PREFIX,
    exists_statement,
    outcome_statement,
    update_by_ids,
    update_statement,
)
from unified.store.records import CLAIMABLE_STATES, UNFINISHED_STATES, AttemptEnd, Dependant, TaskMove, TaskRecord
from unified.store.schema import (
    ATTEMPTS,
    CHUNK,
    LOCK_DEPENDANTS,
    LOCK_DEPENDANTS_IN,
    LOCK_TASKS,
    MARK_GAINED,
    TASKS,
)
from unified.store.sql_direct import DirectStatements
from unified.utils import chunks, from_json


def cas_where(task_id: str, expected_state: str | None, expected_attempt: int | None) -> dict[str, Any]:
    """What a task's compare-and-set matches: its id, and its state and attempt number when given."""
    where: dict[str, Any] = {"id": task_id}
    if expected_state is not None:
        where["state"] = expected_state
    if expected_attempt is not None:
        where["attempts"] = expected_attempt
    return where


def _cas_row(
    task_id: str, expected_state: str | None, expected_attempt: int | None, changes: dict[str, Any]
) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], dict[str, Any]]:
    """One move of update_tasks as its statement's key (changed columns, matched columns) and parameters."""
    if "dependencies" in changes:
        raise ValidationError("update_tasks cannot change dependencies: use update_task for that")
    values = TASKS.changes(changes, task_id)
    where = cas_where(task_id, expected_state, expected_attempt)
    row = {f"_w_{name}": value for name, value in where.items()}
    row.update({f"_v_{name}": value for name, value in values.items()})
    return (tuple(values), tuple(where)), row


def _end_row(
    task_id: str, number: int, changes: dict[str, Any], prefix: str = ""
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One attempt's end as its statement's changed columns and parameters (matching it while still running)."""
    values = ATTEMPTS.changes(changes, task_id)
    row = {f"{prefix}_w_task_id": task_id, f"{prefix}_w_number": number, f"{prefix}_w_state": "running"}
    row.update({f"{prefix}_v_{name}": value for name, value in values.items()})
    return tuple(values), row


def _alike(rows: list[dict[str, Any]], indexes: list[int]) -> tuple[list[list[int]], list[int]]:
    """The rows at ``indexes`` (one statement's) split into sets of two or more that differ only in their ids (one
    ``UPDATE ... WHERE id IN`` changes each as its own compare-and-set would), and the rest. With an id twice, all
    are the rest: they run one by one, in order."""
    if len({rows[i]["_w_id"] for i in indexes}) != len(indexes):
        return [], indexes
    by_values: dict[tuple[Any, ...], list[int]] = {}
    for index in indexes:  # the rows of one statement have the same keys in the same order
        by_values.setdefault(tuple(v for k, v in rows[index].items() if k != "_w_id"), []).append(index)
    sets = [same for same in by_values.values() if len(same) > 1]
    rest = sorted(i for same in by_values.values() if len(same) == 1 for i in same)
    return sets, rest


class SqlOutcomes:
    """SqlStore's set-wise verbs (mixed in; they use the store's transactions and direct statements)."""

    _direct: DirectStatements
    _tx: Any
    _wrap_errors: Any
    _wake: Any
    _write_later: Any
    _rows_by_ids: Any
    _notifies: bool
    set_wise_updates: bool

    def update_tasks(self, moves: list[TaskMove]) -> list[bool]:
        """Compare-and-set several tasks at once; each move is ``(task id, expected state, expected attempt,
        changes)`` as :meth:`update_task` takes them. Whether each changed, in order (a missing task did not)."""
        groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
        rows: list[dict[str, Any]] = []
        for index, move in enumerate(moves):
            key, row = _cas_row(*move)
            rows.append(row)
            groups.setdefault(key, []).append(index)
        changed = [False] * len(moves)
        with self._wrap_errors(), self._tx() as conn:
            for (columns, conditions), indexes in groups.items():
                if not columns:  # no change asked: whether the task matches, as the memory store answers
                    matching = exists_statement(TASKS.table, conditions)
                    for index in indexes:
                        changed[index] = bool(self._direct.rows(conn, matching, rows[index]))
                    continue
                # rows alike go as one statement (a layer of released dependants, outcomes alike): on PostgreSQL each
                # statement of an executemany costs the server about as much as the row it changes
                alike, rest = _alike(rows, indexes) if self.set_wise_updates else ([], indexes)
                for same in alike:
                    by_ids = update_by_ids(TASKS.table, columns, tuple(c for c in conditions if c != "id"))
                    shared = {k: v for k, v in rows[same[0]].items() if k != "_w_id"}
                    changed_ids: set[str] = set()
                    for chunk in chunks([rows[i]["_w_id"] for i in same], CHUNK):
                        changed_ids.update(row[0] for row in self._rows_by_ids(conn, by_ids, chunk, shared))
                    for index in same:
                        changed[index] = rows[index]["_w_id"] in changed_ids
                if rest:
                    statement = update_statement(TASKS.table, columns, conditions)
                    counts = self._direct.rowcounts(conn, statement, [rows[i] for i in rest])
                    for index, count in zip(rest, counts, strict=True):
                        changed[index] = count == 1
            for (task_id, expected_state, _, changes), moved in zip(moves, changed, strict=True):
                if moved:
                    self._wake_moved(task_id, expected_state, changes)
        return changed

    def apply_outcomes(
        self, moves: list[TaskMove], locking: list[bool], ends: list[AttemptEnd]
    ) -> tuple[list[bool], dict[str, list[Dependant]]]:
        """update_tasks of ``moves``, finish_attempts of ``ends``, then lock_dependants of the moved tasks flagged in
        ``locking``. On PostgreSQL one move with at most one end (a chain step, a lone outcome) is one statement: its
        round trip is most of what each costs there."""
        if not (self._notifies and len(moves) == 1 and moves[0][3] and len(ends) <= 1 and all(e[2] for e in ends)):
            return apply_outcomes_in_turn(self, moves, locking, ends)  # type: ignore[arg-type]
        task_id, expected_state, _, changes = moves[0]
        (columns, conditions), row = _cas_row(*moves[0])
        end_columns = None
        if ends:
            end_columns, end_row = _end_row(*ends[0], prefix=END_PREFIX)
            row.update(end_row)
        statement = outcome_statement(columns, conditions, end_columns, locking[0])
        with self._wrap_errors(), self._tx() as conn:
            rows = self._direct.rows(conn, statement, row)
            moved = any(upstream is None for *_, upstream in rows)
            if moved:
                self._wake_moved(task_id, expected_state, changes)
                if locking[0] and any(upstream is None and state == "gained" for _, state, _, upstream in rows):
                    # a task was added on it: this statement's snapshot may predate that insert, a new one does not
                    return [moved], self.lock_dependants([task_id])
        found = sorted(Dependant(i, state, tuple(from_json(deps))) for i, state, deps, upstream in rows if upstream)
        return [moved], ({task_id: found} if found else {})

    def _wake_moved(self, task_id: str, expected_state: str | None, changes: dict[str, Any]) -> None:
        """After a task's compare-and-set: announce it if it became claimable, or room if it stopped running."""
        if "state" in changes:
            if changes["state"] in CLAIMABLE_STATES:
                self._wake(claimable=[task_id])
            elif expected_state == "running" != changes["state"]:
                self._wake(room=[task_id])

    def lock_dependants(self, task_ids: list[str]) -> dict[str, list[Dependant]]:
        """The tasks that depend on each of ``task_ids`` (those with none are left out) as they are now, locked
        FOR UPDATE in id order (SQLite's writers are serialised already)."""
        found: dict[str, list[Dependant]] = {}
        ids = list(dict.fromkeys(task_ids))
        with self._wrap_errors(), self._tx() as conn:
            for chunk in chunks(ids, CHUNK):
                if len(chunk) == 1:  # a chain step: the prebuilt statement, no IN list to render
                    rows = self._direct.rows(conn, LOCK_DEPENDANTS, {"_id": chunk[0]})
                else:
                    rows = self._rows_by_ids(conn, LOCK_DEPENDANTS_IN, chunk)
                for task_id, state, dependencies, upstream in rows:
                    found.setdefault(upstream, []).append(Dependant(task_id, state, tuple(from_json(dependencies))))
        return found

    def lock_tasks(self, task_ids: list[str], for_dependant: bool = False) -> list[TaskRecord]:
        """The tasks with these ids that exist, as they are now, locked FOR UPDATE in id order until the transaction
        ends (SQLite's writers are serialised already). ``for_dependant``: a task is added on them; on PostgreSQL the
        unfinished ones are marked (``gained_dependants``), so that an outcome whose statement began before the insert
        commits, and waits for these rows, looks for its dependants again (see ``outcome_statement``)."""
        found: list[TaskRecord] = []
        with self._wrap_errors(), self._tx() as conn:
            for chunk in chunks(sorted(set(task_ids)), CHUNK):
                found += [TASKS.record(row) for row in self._rows_by_ids(conn, LOCK_TASKS, chunk)]
            if for_dependant and self.may_miss_new_dependants:  # PostgreSQL's only
                unfinished = [t.id for t in found if t.state in UNFINISHED_STATES]
                for chunk in chunks(unfinished, CHUNK):
                    self._direct.rowcount(conn, MARK_GAINED.array, {"_ids": chunk})
        return found

    def finish_attempts(self, outcomes: list[AttemptEnd]) -> None:
        """Set the outcome fields of several attempts at once, of those still running: one ``executemany`` per set
        of changed fields. On PostgreSQL they are sent with the transaction's COMMIT (one round trip for all)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for outcome in outcomes:
            columns, row = _end_row(*outcome)
            if columns:  # an end that sets nothing changes nothing
                groups.setdefault(columns, []).append(row)
        with self._wrap_errors(), self._tx() as conn:
            for columns, rows in groups.items():
                statement = update_statement(ATTEMPTS.table, columns, ATTEMPT_MATCH)
                self._write_later(conn, statement, rows)
