"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from unified.task_manager import TaskManager
from unified.utils import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def drained(clock: FakeClock) -> Iterator[TaskManager]:
    """A TaskManager with no worker threads on the memory store: the test runs work with run_until_idle()."""
    manager = TaskManager(store="memory://", max_workers=0, clock=clock)
    yield manager
    manager.shutdown()


@pytest.fixture
def manager() -> Iterator[TaskManager]:
    """A TaskManager with real worker threads on the memory store."""
    tm = TaskManager(store="memory://", max_workers=4)
    yield tm
    tm.shutdown()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for the test (skips with the reason when no PostgreSQL is configured)."""
    from tests.helpers.postgres import postgres_schema_url

    with postgres_schema_url() as url:
        yield url
