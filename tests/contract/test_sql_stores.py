"""What only the SQL stores promise: SQLite pragmas and URL handling, driver names, errors of an unusable database."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from unified.errors import DuplicateTaskError, StoreError, ValidationError
from unified.store.cas_statements import update_statement
from unified.store.records import TaskRecord, WorkflowRecord
from unified.store.schema import FIRST_EXISTING_TASK, tasks
from unified.store.sql import SqlStore, driver_url
from unified.store.sql_direct import COPY_MIN
from unified.store.sqlite import SqliteStore


def pragma(store: SqliteStore, name: str) -> object:
    with store._tx(write=False) as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_url_opens_a_durable_sqlite_store(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path}/deep/er/unified.db") as store:
        assert isinstance(store, SqliteStore)
        assert store.url == f"sqlite:///{tmp_path}/deep/er/unified.db"
        assert store.keeps_objects is False
        assert pragma(store, "journal_mode") == "wal"
        assert pragma(store, "synchronous") == 2  # FULL
        assert pragma(store, "foreign_keys") == 1
        assert pragma(store, "busy_timeout") == 30_000
    assert (tmp_path / "deep" / "er" / "unified.db").exists()


def test_sqlite_synchronous_can_be_relaxed_but_not_disabled(tmp_path: Path) -> None:
    with SqliteStore(f"sqlite:///{tmp_path}/normal.db", synchronous="normal") as store:
        assert pragma(store, "synchronous") == 1
    with pytest.raises(ValidationError, match="OFF"):
        SqliteStore(f"sqlite:///{tmp_path}/off.db", synchronous="OFF")


def test_a_sqlite_file_another_process_holds_is_a_store_error(tmp_path: Path) -> None:
    with SqliteStore(f"sqlite:///{tmp_path}/held.db") as store:
        with store._group.turn() as conn:  # the write connection, told not to wait for the lock
            conn.connection.driver_connection.execute("PRAGMA busy_timeout = 0")
        holder = sqlite3.connect(tmp_path / "held.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match=r"could not be used.*locked"), store.atomic():
                pytest.fail("the transaction began although another connection holds the write lock")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with store.atomic():  # the lock is free again: the same connection writes
            store.set_queue_limit("q", 1)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"])
def test_in_memory_sqlite_is_refused_with_a_pointer_to_memory_store(url: str) -> None:
    with pytest.raises(ValidationError, match="memory://"):
        SqlStore(url)


def test_postgres_urls_use_psycopg_3() -> None:
    assert driver_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_database_raises_store_error() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1") as caught:
        SqlStore("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=5")
    assert "secret" not in str(caught.value)


def test_a_pool_with_no_connection_free_in_time_is_a_store_error(tmp_path: Path) -> None:
    with SqliteStore(f"sqlite:///{tmp_path}/pool.db", pool_size=1, max_overflow=0, pool_timeout=0.05) as store:
        held = store._reads.connect()  # another thread's, for as long as the wait lasts
        with pytest.raises(StoreError, match=r"no working connection.*pool is large enough"):
            store.count_tasks_by_state()
        held.close()
        assert store.count_tasks_by_state() == {}, "a free connection again"


def test_unusable_sqlite_file_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="could not be used"):
        SqliteStore(f"sqlite:///{tmp_path}/dir.db")


@pytest.mark.postgres
def test_a_compare_and_set_finds_its_task_by_id_on_a_table_without_statistics(
    postgres_url: str, make_task: Callable[..., TaskRecord]
) -> None:
    store = SqlStore(postgres_url)
    try:
        store.insert_tasks([make_task(f"t{i}", state="pending") for i in range(1000)])  # never analysed
        statement = update_statement(tasks, ("state",), ("id", "state"))
        with store._tx() as conn:
            compiled = statement.compile(dialect=conn.dialect)
            params = compiled.construct_params({"_w_id": "t7", "_w_state": "pending", "_v_state": "queued"})
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + compiled.string, params))
        assert "uq_tasks_id" in plan, f"one row by its unique id, not a scan of every pending task:\n{plan}"
        assert store.update_task("t7", "pending", state="queued") and not store.update_task("t8", "queued")
    finally:
        store.close()


@pytest.mark.postgres
def test_a_bulk_insert_meeting_a_concurrent_duplicate_keeps_nothing_and_says_so(
    postgres_url: str, make_task: Callable[..., TaskRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqlStore(postgres_url) as store:
        store.insert_tasks([make_task("t007")])
        # the id check before the insert misses what a concurrent transaction committed meanwhile: the COPY meets it
        checked = store._rows_by_ids
        monkeypatch.setattr(
            store, "_rows_by_ids", lambda c, s, ids: [] if s is FIRST_EXISTING_TASK else checked(c, s, ids)
        )
        batch = [make_task(f"t{i:03d}") for i in range(2 * COPY_MIN)]
        with pytest.raises(DuplicateTaskError, match="already exists"):
            store.insert_tasks(batch)
        assert [t.id for t in store.list_tasks()] == ["t007"]
        store.insert_tasks(batch[8:])  # the connection is usable again
        assert store.count_tasks_by_state() == {"queued": len(batch) - 7}
        # inside a caller's transaction only the failed batch is undone
        with store.atomic():
            store.insert_tasks([make_task("u-before")])
            with pytest.raises(DuplicateTaskError):
                store.insert_tasks([make_task(f"u{i:03d}") for i in range(COPY_MIN)] + [make_task("t007")])
            store.insert_tasks([make_task(f"u-after{i:03d}") for i in range(COPY_MIN)])
        assert store.count_tasks_by_state() == {"queued": len(batch) - 7 + 1 + COPY_MIN}


@pytest.mark.postgres
def test_postgres_text_holding_a_nul_character_is_a_validation_error(postgres_url: str) -> None:
    with SqlStore(postgres_url) as store:
        with pytest.raises(ValidationError, match="cannot hold the NUL character"):
            store.put_workflow(WorkflowRecord("w", "a\x00b"))
        with pytest.raises(ValidationError, match="cannot hold the NUL character"):
            store.get_task("a\x00b")
        store.put_workflow(WorkflowRecord("w", "fine", description="the store still works after"))
        assert store.get_workflow("w").name == "fine"
