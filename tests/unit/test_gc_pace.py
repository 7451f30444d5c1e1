"""The collector's young-generation threshold is raised while worker pools run and put back after the last stops."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from unified import gc_pace
from unified.errors import ValidationError
from unified.task_manager import TaskManager


@pytest.fixture(autouse=True)
def default_thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    monkeypatch.delenv("UNIFIED_GC_THRESHOLD", raising=False)
    yield
    gc.set_threshold(*saved)


def test_a_running_pool_raises_the_threshold_and_the_last_to_stop_puts_it_back() -> None:
    first = TaskManager(max_workers=1)
    assert gc.get_threshold() == (10_000, 10, 10)
    second = TaskManager(max_workers=1)
    first.shutdown()
    assert gc.get_threshold() == (10_000, 10, 10), "a pool still runs"
    second.shutdown()
    second.shutdown()  # a second stop releases nothing more
    assert gc.get_threshold() == (700, 10, 10)


def test_a_threshold_the_program_set_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.set_threshold(50_000, 20, 20)
    with TaskManager(max_workers=1):
        assert gc.get_threshold() == (50_000, 20, 20), "already higher: left alone"
    assert gc.get_threshold() == (50_000, 20, 20)
    gc.set_threshold(0, 10, 10)
    with TaskManager(max_workers=1):
        assert gc.get_threshold() == (0, 10, 10), "automatic collection turned off stays off"
    gc.set_threshold(700, 10, 10)
    gc_pace.hold()
    gc.set_threshold(2_000, 10, 10)  # the program changes it while a pool runs
    gc_pace.release()
    assert gc.get_threshold() == (2_000, 10, 10), "its own change is kept"


def test_the_setting_chooses_the_threshold_or_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIFIED_GC_THRESHOLD", "0")
    with TaskManager(max_workers=1):
        assert gc.get_threshold() == (700, 10, 10)
    monkeypatch.setenv("UNIFIED_GC_THRESHOLD", "5000")
    with TaskManager(max_workers=1):
        assert gc.get_threshold() == (5_000, 10, 10)
    monkeypatch.setenv("UNIFIED_GC_THRESHOLD", "lots")
    with pytest.raises(ValidationError, match="UNIFIED_GC_THRESHOLD must be a whole number"):
        gc_pace.hold()
    monkeypatch.setenv("UNIFIED_GC_THRESHOLD", "5000")
    with TaskManager(max_workers=1):
        assert gc.get_threshold() == (5_000, 10, 10), "the refused setting counted no pool"
    assert gc.get_threshold() == (700, 10, 10)
