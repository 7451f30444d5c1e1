"""Fixtures of the store contract: one ``store`` per implementation (memory, SQLite file, PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.postgres import postgres_schema_url
from unified.store.base import Store
from unified.store.memory import MemoryStore
from unified.store.records import TaskRecord
from unified.store.sql import SqlStore

KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DURABLE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def open_test_store(url: str) -> Store:
    """The store for a test URL: MemoryStore for memory://, else SqlStore (SQLite or PostgreSQL)."""
    return MemoryStore() if url == "memory://" else SqlStore(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a fresh PostgreSQL schema, dropped after the test."""
    with postgres_schema_url() as url:
        yield url


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/store/unified.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The URL of a fresh, empty store of each kind."""
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=DURABLE_KINDS)
def durable_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The URL of a fresh database that outlives a store object (SQLite file, PostgreSQL schema)."""
    return _url(request.param, request, tmp_path)


@pytest.fixture
def open_store() -> Callable[[str], Store]:
    """Opens the store of a test URL (the caller closes it)."""
    return open_test_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh store of each kind, closed after the test."""
    opened = open_test_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def durable_store(durable_url: str) -> Iterator[Store]:
    """A fresh store of each durable kind (SQLite, PostgreSQL), closed after the test."""
    opened = open_test_store(durable_url)
    yield opened
    opened.close()


@pytest.fixture
def make_task() -> Callable[..., TaskRecord]:
    """A factory of queued task records: ``make_task("a", priority=2)``."""

    def make(task_id: str, **fields: Any) -> TaskRecord:
        values: dict[str, Any] = {
            "id": task_id,
            "task_id": task_id,
            "run_id": None,
            "name": f"name-{task_id}",
            "spec": {"func": "tests.helpers.tasks:noop", "args": [1, "two"]},
            "state": "queued",
            "created_at": 1000.0,
        }
        values.update(fields)
        return TaskRecord(**values)

    return make
