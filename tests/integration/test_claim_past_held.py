"""A claim does not walk past the tasks other engines hold: however many of them are queued ahead, an engine that
holds none of them does the same work to claim (SQLite: virtual machine steps; PostgreSQL: index rows read)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from psycopg import sql as psql
from sqlalchemy.dialects.postgresql import asyncpg

from unified.store.claim_statements import CLAIM_UNLIMITED, START_UNLIMITED
from unified.store.records import TaskRecord
from unified.store.sql import SqlStore

HELD_AHEAD = 2_000
PARAMS = {"_now": 1e12, "_worker": "w", "_until": 2e12, "_limit": 1, "_holder": "me:1:mine"}


def backlog(store: SqlStore, held: int) -> None:
    """``held`` tasks of another engine queued first, then tasks any engine can run."""

    def task(n: int, holder: str | None) -> TaskRecord:
        return TaskRecord(id=f"t{n}", task_id=f"t{n}", run_id=None, name="t", spec={"func": "tests.helpers.tasks:noop"},
                          state="queued", created_at=1.0, queued_at=1.0, holder=holder)  # fmt: skip

    store.insert_tasks([task(n, "them:2:theirs") for n in range(held)])
    store.insert_tasks([task(held + n, None) for n in range(10)])


def sqlite_claim_steps(path: Path, held: int) -> int:
    """The virtual machine steps (in thousands) of one claim on a SQLite file with ``held`` held tasks ahead."""
    with SqlStore(f"sqlite:///{path}") as store:
        backlog(store, held)
    compiled = CLAIM_UNLIMITED.compile(dialect=store._engine.dialect)
    values = compiled.construct_params(PARAMS)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn = sqlite3.connect(path)
    try:
        conn.set_progress_handler(count, 1000)
        claimed = conn.execute(compiled.string, [values[name] for name in compiled.positiontup]).fetchall()
        conn.rollback()
    finally:
        conn.close()
    assert len(claimed) == 1
    return steps[0]


def test_a_sqlite_claim_does_not_walk_past_held_tasks(tmp_path: Path) -> None:
    alone = sqlite_claim_steps(tmp_path / "alone.db", 0)
    behind = sqlite_claim_steps(tmp_path / "behind.db", HELD_AHEAD)
    assert behind <= alone + 1, (alone, behind)  # past 2,000 held tasks it took 24 (thousand) steps, not 0


@pytest.mark.postgres
def test_a_postgres_claim_does_not_walk_past_held_tasks(pg_url: str) -> None:
    with SqlStore(pg_url) as store:
        backlog(store, HELD_AHEAD)
        compiled = START_UNLIMITED.compile(dialect=asyncpg.dialect())  # $1, $2, ... placeholders, for PREPARE
        values = compiled.construct_params(PARAMS)
        with store._tx() as conn:
            literals = psql.SQL(", ").join(psql.Literal(values[name]) for name in compiled.positiontup)
            conn.exec_driver_sql(f"PREPARE claim AS {compiled.string}")
            explain = f"EXPLAIN (ANALYZE) EXECUTE claim({literals.as_string(conn.connection.driver_connection)})"
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(explain).all())
            conn.rollback()
    removed = [int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
    assert max(removed, default=0) < 10, plan  # the single walk passed by (and read) all 2,000
