"""The SQL store's compare-and-set statements, built per set of changed and matched columns and cached.

Every verb that changes a record by key and expected state (a task's move, an attempt's end, a run's settling)
names the columns it sets and the ones it matches; each distinct pair is built once here. Bind parameters are
``_v_<column>`` for the values set and ``_w_<column>`` for the values matched.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from unified.store.schema import ByIds, attempts, by_ids, locked_dependants, task_deps, tasks

END_PREFIX = "_e"  # the bind parameters of the attempt end that outcome_statement writes: _e_v_<column>, _e_w_<column>
ATTEMPT_MATCH = ("task_id", "number", "state")  # an attempt's end changes it only while it is still running


def _matching(table: sa.Table, conditions: tuple[str, ...], prefix: str = "") -> list[sa.ColumnElement[bool]]:
    """A key column compares with ``=``; the others (the state or attempt a compare-and-set expects) with
    ``IS NOT DISTINCT FROM``, the same for these non-null values but served by no index. Without statistics (a new
    table, or a burst since the last ANALYZE) PostgreSQL's planner ties the key's unique index with the index on state
    (or a partial index on one state) and may pick the latter: every dependant released then scanned all pending tasks
    (0.12 ms instead of 0.02 per update with 1,000 of them, growing with the workflow)."""
    return [
        column == value if column.primary_key or column.unique else column.is_not_distinct_from(value)
        for column, value in ((table.c[name], sa.bindparam(f"{prefix}_w_{name}")) for name in conditions)
    ]


def _updating(table: sa.Table, columns: tuple[str, ...], conditions: tuple[str, ...], prefix: str = "") -> sa.Update:
    """``UPDATE table SET columns WHERE conditions``, its bind parameters named with ``prefix``."""
    values = {name: sa.bindparam(f"{prefix}_v_{name}") for name in columns}
    return sa.update(table).where(*_matching(table, conditions, prefix)).values(values)


@functools.lru_cache(maxsize=256)
def update_statement(table: sa.Table, columns: tuple[str, ...], conditions: tuple[str, ...]) -> sa.Update:
    """``UPDATE table SET columns WHERE conditions``, with bind parameters ``_v_<column>`` and ``_w_<column>``."""
    return _updating(table, columns, conditions)


@functools.lru_cache(maxsize=64)
def outcome_statement(
    columns: tuple[str, ...], conditions: tuple[str, ...], end_columns: tuple[str, ...] | None, locking: bool
) -> sa.CompoundSelect:
    """PostgreSQL: one outcome in one statement (its round trip is most of what each costs there): ``update_statement``
    of one task; the end of one attempt if ``end_columns`` (set while it is still running, bind parameters prefixed
    with END_PREFIX); and with ``locking``, if the task changed, its dependants locked as LOCK_DEPENDANTS locks
    them. Rows of ``(id, state, dependencies, depends_on)``: the changed task with the last two NULL and ``state``
    'gained' if a task was added on it meanwhile (``gained_dependants``), then its dependants."""
    moved = _updating(tasks, columns, conditions).returning(tasks.c.id, tasks.c.gained_dependants).cte("moved")
    # the mark as of the row's newest version (a waited-for lock's): set, the dependants read here may miss some
    gained = sa.case((moved.c.gained_dependants, sa.literal("gained")), else_=sa.null())
    rows: list[sa.Select[Any]] = [sa.select(moved.c.id, gained, sa.null(), sa.null())]
    if locking:
        dependants = locked_dependants(
            sa.and_(task_deps.c.depends_on == sa.bindparam("_w_id"), sa.exists(sa.select(moved.c.id)))
        ).cte("dependants")
        rows.append(sa.select(dependants.c.id, dependants.c.state, dependants.c.dependencies, dependants.c.depends_on))
    statement = sa.union_all(*rows)
    if end_columns is not None:  # runs whether or not the task moved: PostgreSQL runs every WITH that writes
        statement = statement.add_cte(_updating(attempts, end_columns, ATTEMPT_MATCH, END_PREFIX).cte("ended"))
    return statement


@functools.lru_cache(maxsize=64)
def update_by_ids(table: sa.Table, columns: tuple[str, ...], conditions: tuple[str, ...]) -> ByIds:
    """``update_statement`` of every row whose ``id`` is in a list (see ``ByIds``), the values and other
    ``conditions`` the same for all; it returns the ids of the rows it changed."""
    shared = _updating(table, columns, conditions)
    return by_ids(table.c.id, lambda ids: shared.where(ids).returning(table.c.id))


@functools.lru_cache(maxsize=64)
def exists_statement(table: sa.Table, conditions: tuple[str, ...]) -> sa.Select[Any]:
    """``SELECT 1 FROM table WHERE conditions``, with bind parameters ``_w_<column>``."""
    return sa.select(sa.literal(1)).select_from(table).where(*_matching(table, conditions))
