"""The Alembic migrations build exactly the tables of ``unified.store.schema`` on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.helpers.postgres import database_url
from unified.errors import StoreError
from unified.store import migrations
from unified.store.schema import metadata
from unified.store.sql import SqlStore, driver_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty SQLite file or PostgreSQL schema."""
    with database_url(request.param, tmp_path, "migrated.db") as empty:
        yield empty


def _diffs(engine: sa.Engine, target: sa.MetaData) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, target))


@pytest.mark.parametrize("how", ["every migration", "the declared schema at once"])
def test_upgrade_builds_the_declared_schema(url: str, how: str) -> None:
    from alembic import command

    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if how == "every migration":
                command.upgrade(migrations.alembic_config(conn), "head")
            else:
                migrations.upgrade(conn)  # an empty database: no Alembic
        assert _diffs(engine, metadata) == []
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == migrations.HEAD
            command.upgrade(migrations.alembic_config(conn), "head")  # Alembic finds it at head: nothing to run
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
        assert _diffs(engine, metadata) == []
    finally:
        engine.dispose()


def test_comparison_sees_a_missing_index(url: str) -> None:
    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
            conn.exec_driver_sql("DROP INDEX ix_tasks_claim")
        assert [diff[0] for diff in _diffs(engine, metadata)] == ["add_index"]  # type: ignore[index]
    finally:
        engine.dispose()


def test_opening_a_store_migrates_once(url: str) -> None:
    with SqlStore(url) as store:
        assert store.count_tasks_by_state() == {}
    with SqlStore(url) as again:  # already at head: no second upgrade
        assert again.list_workflows() == []
    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    finally:
        engine.dispose()


def test_reopening_a_current_database_skips_alembic(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    SqlStore(url).close()

    def refuse(connection: sa.Connection) -> None:
        raise AssertionError("upgrade ran on a database already at head")

    monkeypatch.setattr(migrations, "upgrade", refuse)
    SqlStore(url).close()


def test_a_workflow_stored_before_its_draft_hash_was_kept_still_runs(url: str) -> None:
    from alembic import command

    from unified.task_manager import TaskManager
    from unified.testing import run_until_idle
    from unified.workflow.workflow import WorkflowManager

    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), "0003")
            spec = {"task_id": "t", "func": "tests.helpers.tasks:add", "args": [1, 2], "dependencies": []}
            insert = "INSERT INTO workflows (workflow_id, name, description, tasks, created_at, updated_at) VALUES "
            conn.execute(sa.text(insert + "('w', 'old', '', :tasks, 0, 0)"), {"tasks": json.dumps([spec])})
    finally:
        engine.dispose()
    with TaskManager(store=url, max_workers=0) as tm:  # opening the store upgrades it to the head
        wm = WorkflowManager(task_manager=tm)
        assert tm.store.get_workflow("w").draft_hash is None
        run_id = wm.start_workflow("w")
        run_until_idle(wm)
        assert wm.get_run(run_id).results == {"t": 3}


def test_workflows_sharing_a_name_before_names_were_unique_are_renamed_all_but_the_oldest(url: str) -> None:
    from alembic import command

    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), "0004")
            insert = "INSERT INTO workflows (workflow_id, name, description, tasks, created_at, updated_at) VALUES "
            for workflow_id, name, created_at in (("b", "etl", 2), ("a", "etl", 1), ("c", "etl", 1), ("d", "solo", 0)):
                conn.execute(sa.text(insert + "(:id, :name, '', '[]', :at, :at)"),
                             {"id": workflow_id, "name": name, "at": created_at})  # fmt: skip
    finally:
        engine.dispose()
    store = SqlStore(url)  # opening it upgrades it to the head
    try:
        assert store.workflow_names() == {"a": "etl", "c": "etl (c)", "b": "etl (b)", "d": "solo"}
    finally:
        store.close()


def test_a_database_upgraded_by_a_newer_unified_is_refused_with_what_to_do(url: str) -> None:
    SqlStore(url).close()
    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match=r"revision 9999, newer than this version of unified knows .*install that"):
        SqlStore(url)


def _held_and_free_tasks_at(url: str, revision: str) -> None:
    """A database at ``revision`` with a held task ``t`` (holder ``host:1:old``) queued before a free one ``u``."""
    from alembic import command

    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), revision)
            spec = json.dumps({"task_id": "t", "func": "inproc:<lambda>", "ref": "inproc:<lambda>@1"})
            insert = (
                "INSERT INTO tasks (id, task_id, name, spec, state, priority, queue, dependencies, attempts, "
                "metadata, created_at, holder) VALUES (:id, :id, 'task', :spec, 'queued', 0, 'default', '[]', 0, "
                "'{}', 0, :holder)"
            )
            conn.execute(sa.text(insert), {"id": "t", "spec": spec, "holder": "host:1:old"})
            conn.execute(sa.text(insert), {"id": "u", "spec": '{"func": "tests.helpers.tasks:noop"}', "holder": None})
    finally:
        engine.dispose()


def test_a_migrated_claim_index_serves_held_tasks_to_their_holder_only(url: str) -> None:
    _held_and_free_tasks_at(url, "0009")
    with SqlStore(url) as store:  # opening it upgrades it to the head: the claim index split in two
        assert [t.id for t in store.claim_tasks("w", 1.0, 30.0, limit=5, holder="host:2:new")] == ["u"]
        assert [t.id for t in store.claim_tasks("w", 1.0, 30.0, limit=5, holder="host:1:old")] == ["t"]


def test_tasks_held_before_holders_proved_themselves_are_left_as_they_were(url: str) -> None:
    from unified.engine import Engine
    from unified.utils import FakeClock

    _held_and_free_tasks_at(url, "0008")
    with SqlStore(url) as store:  # opening it upgrades it to the head: the holders table, empty
        assert store.expired_holders(1e12) == []
        assert Engine(store, FakeClock(1e12)).expire_holders() == 0  # no proof to find expired: not taken for dead
        assert store.get_task("t").state == "queued"
        assert store.renew_holder("host:1:old", 10.0) is False  # a first proof
