"""The SQL store's compare-and-set statements, built per set of changed and matched columns and cached.

Every verb that changes a record by key and expected state (a task's move, an attempt's end, a run's settling)
names the columns it sets and the ones it matches; each distinct pair is built once here. Bind parameters are
``_v_<column>`` for the values set and ``_w_<column>`` for the values matched.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from unified.store.schema import ByIds, by_ids, locked_dependants, task_deps, tasks


def _matching(table: sa.Table, conditions: tuple[str, ...]) -> list[sa.ColumnElement[bool]]:
    """A key column compares with ``=``; the others (the state or attempt a compare-and-set expects) with
    ``IS NOT DISTINCT FROM``, the same for these non-null values but served by no index. Without statistics (a new
    table, or a burst since the last ANALYZE) PostgreSQL's planner ties the key's unique index with the index on state
    (or a partial index on one state) and may pick the latter: every dependant released then scanned all pending tasks
    (0.12 ms instead of 0.02 per update with 1,000 of them, growing with the workflow)."""
    return [
        column == value if column.primary_key or column.unique else column.is_not_distinct_from(value)
        for column, value in ((table.c[name], sa.bindparam(f"_w_{name}")) for name in conditions)
    ]


@functools.lru_cache(maxsize=256)
def update_statement(table: sa.Table, columns: tuple[str, ...], conditions: tuple[str, ...]) -> sa.Update:
    """``UPDATE table SET columns WHERE conditions``, with bind parameters ``_v_<column>`` and ``_w_<column>``."""
    values = {name: sa.bindparam(f"_v_{name}") for name in columns}
    return sa.update(table).where(*_matching(table, conditions)).values(values)


@functools.lru_cache(maxsize=64)
def update_locking_dependants(columns: tuple[str, ...], conditions: tuple[str, ...]) -> sa.CompoundSelect:
    """PostgreSQL: ``update_statement`` of one task and, if it changed, its dependants locked as LOCK_DEPENDANTS
    locks them, in one statement (one round trip where a chain step paid two). Rows of ``(id, state, dependencies,
    depends_on)``: the changed task with the last three NULL, then its dependants."""
    values = {name: sa.bindparam(f"_v_{name}") for name in columns}
    moved = sa.update(tasks).where(*_matching(tasks, conditions)).values(values).returning(tasks.c.id).cte("moved")
    dependants = locked_dependants(
        sa.and_(task_deps.c.depends_on == sa.bindparam("_w_id"), sa.exists(sa.select(moved.c.id)))
    ).cte("dependants")
    return sa.union_all(
        sa.select(moved.c.id, sa.null(), sa.null(), sa.null()),
        sa.select(dependants.c.id, dependants.c.state, dependants.c.dependencies, dependants.c.depends_on),
    )


@functools.lru_cache(maxsize=64)
def update_by_ids(table: sa.Table, columns: tuple[str, ...], conditions: tuple[str, ...]) -> ByIds:
    """``update_statement`` of every row whose ``id`` is in a list (see ``ByIds``), the values and other
    ``conditions`` the same for all; it returns the ids of the rows it changed."""
    values = {name: sa.bindparam(f"_v_{name}") for name in columns}
    others = _matching(table, conditions)
    return by_ids(table.c.id, lambda ids: sa.update(table).where(ids, *others).values(values).returning(table.c.id))


@functools.lru_cache(maxsize=64)
def exists_statement(table: sa.Table, conditions: tuple[str, ...]) -> sa.Select[Any]:
    """``SELECT 1 FROM table WHERE conditions``, with bind parameters ``_w_<column>``."""
    return sa.select(sa.literal(1)).select_from(table).where(*_matching(table, conditions))
