"""Fixtures shared by every test layer."""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Iterator

import pytest

from unified.task_manager import TaskManager
from unified.utils import FakeClock

HARD_HANG_SECONDS = 300  # beyond pytest-timeout's 120 s (pyproject), which a hang inside C code never sees
_terminal: list[int] = []  # a descriptor of the run's own stderr: pytest points fd 2 at a capture file during tests


def pytest_configure(config: pytest.Config) -> None:
    """Keep the run's stderr for the hang report (taken with pytest's capture paused)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture()
    try:
        _terminal.append(os.dup(sys.__stderr__.fileno()))
    finally:
        if capture is not None:
            capture.resume_global_capture()


@pytest.fixture(autouse=True)
def _exit_on_a_hard_hang() -> Iterator[None]:
    """Print every thread's stack and end the run if a test hangs where pytest-timeout's signal cannot reach it (stuck
    in a C lock: CI would otherwise sit out its whole time limit, as it once did in sys._current_frames)."""
    faulthandler.dump_traceback_later(HARD_HANG_SECONDS, exit=True, file=_terminal[0])
    yield
    faulthandler.cancel_dump_traceback_later()


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
