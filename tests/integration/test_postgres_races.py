"""Two workers finishing the last two upstream tasks at the same moment on PostgreSQL (READ COMMITTED): the
dependant is released and the run is settled exactly once, whichever transaction commits first."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from unified.engine import Engine
from unified.store.sql import SqlStore
from unified.task import Task

pytestmark = pytest.mark.postgres


@pytest.fixture
def engines(pg_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on two stores (two connection pools), as two worker processes would have."""
    first, second = SqlStore(pg_url), SqlStore(pg_url)
    yield Engine(first), Engine(second)
    first.close()
    second.close()


def finish_both_at_once(engines: tuple[Engine, Engine], tasks: list[Task]) -> str:
    """Start a run of ``tasks``, claim a and b, and complete them in overlapping transactions; returns the run id.

    The first worker completes a and keeps its transaction open until the second has completed b (or 1 s has
    passed: with row locks the second one waits for the first one's commit, as it must)."""
    one, two = engines
    run_id = one.create_run(None, None, tasks)
    claimed = {r.task_id: r for r in one.claim("w1", limit=2)}
    assert set(claimed) == {"a", "b"}
    a_done, b_done = threading.Event(), threading.Event()

    def finish_a() -> None:
        with one.batch():
            one.complete(claimed["a"], "success", result=1)
            a_done.set()
            b_done.wait(1.0)

    def finish_b() -> None:
        assert a_done.wait(5)
        with two.batch():
            two.complete(claimed["b"], "success", result=2)
            b_done.set()

    threads = [threading.Thread(target=finish_a), threading.Thread(target=finish_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return run_id


def test_a_fan_in_task_is_released_when_its_last_two_upstreams_finish_together(engines) -> None:
    tasks = [Task(task_id="a", func=print), Task(task_id="b", func=print),
             Task(task_id="c", func=print, dependencies=["a", "b"])]  # fmt: skip
    run_id = finish_both_at_once(engines, tasks)
    assert engines[0].store.get_task(f"{run_id}.c").state == "queued"


def test_a_run_is_settled_when_its_last_two_tasks_finish_together(engines) -> None:
    run_id = finish_both_at_once(engines, [Task(task_id="a", func=print), Task(task_id="b", func=print)])
    assert engines[0].store.get_run(run_id).state == "success"
