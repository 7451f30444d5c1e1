"""The memory store's claim does not walk past the tasks other engines hold: they wait in heaps of their own, so a
claim touches the same few heap entries however many of them are queued ahead."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import pytest

from unified.store.memory import MemoryStore
from unified.store.records import TaskRecord

HELD_AHEAD = 2_000


def task(n: int, holder: str | None = None, **fields: Any) -> TaskRecord:
    return TaskRecord(id=f"t{n}", task_id=f"t{n}", run_id=None, name="t", spec={"func": "tests.helpers.tasks:noop"},
                      state="queued", created_at=1.0, queued_at=1.0, holder=holder, **fields)  # fmt: skip


def test_a_claim_pops_no_entry_of_tasks_other_engines_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    store.insert_tasks([task(n, "them:2:theirs", priority=5) for n in range(HELD_AHEAD)])
    store.insert_tasks([task(HELD_AHEAD + n) for n in range(3)] + [task(HELD_AHEAD + 3, "me:1:mine", priority=1)])
    pops = [0]
    real_pop: Callable[[list[Any]], Any] = heapq.heappop

    def counted(heap: list[Any]) -> Any:
        pops[0] += 1
        return real_pop(heap)

    monkeypatch.setattr(heapq, "heappop", counted)
    claimed = store.claim_tasks("w", 2.0, 30.0, limit=2, holder="me:1:mine")
    assert [t.id for t in claimed] == [f"t{HELD_AHEAD + 3}", f"t{HELD_AHEAD}"]  # its own held task by priority, then
    assert pops[0] == 2, pops  # the claim popped (and pushed back) all 2,000 held ones ahead
    assert [t.id for t in store.claim_tasks("w", 2.0, 30.0, limit=1, holder="them:2:theirs")] == ["t0"]
