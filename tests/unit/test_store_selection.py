"""How a manager picks its store: a URL, a store object, UNIFIED_DATABASE_URL, else memory; bad URLs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from unified.errors import ValidationError
from unified.store import open_store
from unified.store.memory import MemoryStore
from unified.task_manager import TaskManager


def test_unset_means_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIFIED_DATABASE_URL", raising=False)
    with TaskManager(max_workers=0) as tm:
        assert isinstance(tm.store, MemoryStore)


def test_the_environment_variable_names_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UNIFIED_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    with TaskManager(max_workers=0) as tm:
        assert tm.store.url.startswith("sqlite:")
        tm.queue_task("tests.helpers.tasks:add", args=(1, 2), task_id="kept")
    with TaskManager(store=f"sqlite:///{tmp_path}/env.db", max_workers=0) as again:
        assert again.get_task_metadata("kept")["state"] == "queued"


def test_a_store_object_is_used_as_given() -> None:
    store = MemoryStore()
    with TaskManager(store=store, max_workers=0) as tm:
        assert tm.store is store


@pytest.mark.parametrize("url", ["mysql://db", "nonsense", "sqlite:///:memory:"])
def test_unknown_store_urls_are_refused_with_the_ones_that_work(url: str) -> None:
    with pytest.raises(ValidationError, match="memory://"):
        open_store(url)
