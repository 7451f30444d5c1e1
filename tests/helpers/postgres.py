"""A throwaway PostgreSQL schema per test, and ways to be rude to the server (drop every connection)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from unified.store.sql import driver_url

POSTGRES_ENV = "UNIFIED_TEST_POSTGRES_URL"


def postgres_base_url() -> str:
    """The test server's URL; skips the test when ``UNIFIED_TEST_POSTGRES_URL`` is unset."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: point it at a PostgreSQL database the tests may use")
    return base


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema (through search_path), dropped afterwards; skips without the env."""
    base = postgres_base_url()
    schema = f"unified_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(driver_url(base), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        # the application name marks every session of this test, so drop_connections hits only those
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@contextmanager
def database_url(kind: str, folder: Path, name: str = "unified.db") -> Iterator[str]:
    """The URL of an empty database that processes can share: a SQLite file ``name`` in ``folder`` (``kind``
    "sqlite"), else a fresh PostgreSQL schema (skips without the env)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/{name}"
        return
    with postgres_schema_url() as url:
        yield url


def drop_connections(url: str) -> int:
    """Terminate every session opened with the test URL ``url`` (as a server restart would); returns how many.

    Only the sessions of this test's schema (its application name) are hit, so other suites sharing the server
    are left alone. Returns once those sessions have ended (termination is asynchronous), as a restart would
    before anyone could reconnect.
    """
    name = sa.engine.make_url(url).query["application_name"]
    admin = sa.create_engine(driver_url(postgres_base_url()), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            pids = [
                pid
                for pid, terminated in conn.exec_driver_sql(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND application_name = %(name)s",
                    {"name": name},
                )
                if terminated
            ]
            deadline = time.monotonic() + 10.0  # the sessions it terminated, not new ones their clients open
            while (
                pids
                and time.monotonic() < deadline
                and conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%(pids)s)", {"pids": pids}
                ).scalar()
            ):
                time.sleep(0.01)  # polls the server for the end of the sessions it is terminating, not for time
        return len(pids)
    finally:
        admin.dispose()
