"""PostgreSQL plans the claim as an ordered walk of its index, even on a new table with a backlog.

A new table has no statistics: the planner takes about 1% of its tasks for queued and, left alone, reads every
queued entry and sorts them for each claim (see ``postgres.plan_claims_by_index``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import sql as psql
from sqlalchemy.dialects.postgresql import asyncpg

from unified.store.claim_statements import START_UNLIMITED
from unified.store.sql import SqlStore
from unified.task_manager import TaskManager

pytestmark = pytest.mark.postgres

BACKLOG = 2_000


def noop() -> None:
    """Nothing: the tasks only have to be queued."""


@pytest.fixture
def backlog_store(pg_url: str) -> Iterator[SqlStore]:
    """A new schema with BACKLOG queued tasks and no statistics (nothing analyzed it)."""
    with TaskManager(store=pg_url, max_workers=0, run_scheduler=False) as tm:
        with tm.batch():
            for _ in range(BACKLOG):
                tm.queue_task(noop)
        store = tm.store
        assert isinstance(store, SqlStore)
        yield store


def generic_claim_plan(conn: sa.Connection, limit: int = 5) -> str:
    """The plan a prepared claim keeps for the session (its generic plan), as EXPLAIN prints it."""
    compiled = START_UNLIMITED.compile(dialect=asyncpg.dialect())  # $1, $2, ... placeholders, for PREPARE
    values = compiled.construct_params({"_now": 1e12, "_worker": "w", "_until": 2e12, "_limit": limit, "_holder": "h"})
    arguments = [values[name] for name in compiled.positiontup]
    conn.exec_driver_sql(f"PREPARE claim_plan AS {compiled.string}")
    try:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        literals = psql.SQL(", ").join(psql.Literal(a) for a in arguments).as_string(conn.connection.driver_connection)
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE claim_plan({literals})").all()
    finally:
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.exec_driver_sql("DEALLOCATE claim_plan")
    return "\n".join(row[0] for row in rows)


def setting(conn: sa.Connection, name: str) -> Any:
    return conn.exec_driver_sql(f"SHOW {name}").scalar()


def test_the_claim_walks_its_index_in_order_on_a_new_table_with_a_backlog(backlog_store: SqlStore) -> None:
    with backlog_store._tx(write=False) as conn:
        plan = generic_claim_plan(conn)
        # two ordered walks: the tasks any engine can run, and those the claiming engine holds
        assert "Index Scan using ix_tasks_claim on" in plan and "Index Scan using ix_tasks_claim_held" in plan, plan
        assert "Bitmap" not in plan, plan
        # and one sort, of the few rows the walks picked (at most twice the limit), never of the backlog
        assert plan.count("Sort  (") == 1 and plan.index("Sort  (") < plan.index("Append"), plan


def test_claims_take_the_backlog_in_priority_then_queue_order(backlog_store: SqlStore) -> None:
    first = backlog_store.claim_tasks("w", now=1e12, lease_seconds=60, limit=3)
    second = backlog_store.claim_tasks("w", now=1e12, lease_seconds=60, limit=3)
    seqs = [t.seq for t in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6


def test_a_planner_setting_the_url_gives_is_kept(pg_url: str) -> None:
    url = pg_url.replace("options=", "options=-crandom_page_cost%3D2%20", 1)
    with SqlStore(url) as store, store._tx(write=False) as conn:
        assert setting(conn, "random_page_cost") == "2"
        assert setting(conn, "enable_bitmapscan") == "off"  # not given: the store's
