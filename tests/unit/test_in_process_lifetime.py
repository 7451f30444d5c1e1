"""How long this process keeps the in-process functions (lambdas, closures) of the tasks it queued: a task's own until
it succeeded, a workflow's or a schedule's for good; what they captured goes with them."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from unified.functions import FunctionRegistry
from unified.task import Task, TaskContext
from unified.task_manager import TaskManager
from unified.testing import FakeClock, run_until_idle
from unified.workflow.workflow import WorkflowManager


class Frame:
    """Stands for a large object a closure captures (a DataFrame)."""


def fails_first(ctx: TaskContext) -> int:
    """Raise on the first attempt."""
    if ctx.attempt == 1:
        raise RuntimeError("not yet")
    return ctx.attempt


@pytest.fixture(params=["memory", "sqlite"])
def tm(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock):
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/t.db"
    manager = TaskManager(store=url, max_workers=0, clock=clock)
    yield manager
    manager.shutdown()


def test_a_task_that_succeeded_lets_go_of_its_closure(tm: TaskManager, clock: FakeClock) -> None:
    frame = Frame()
    captured = weakref.ref(frame)
    func = lambda frame=frame: 1  # noqa: E731 - a closure over a large object, as in a notebook
    del frame
    first = tm.queue_task(func)
    gate = tm.queue_task(fails_first, max_retries=1, retry_delay_seconds=60)
    later = tm.queue_task(func, dependencies=[gate])
    del func
    run_until_idle(tm)
    gc.collect()
    assert tm.get_task_metadata(first)["state"] == "success" and captured() is not None  # `later` still needs it
    clock.advance(61)
    run_until_idle(tm)
    assert tm.get_result(later) == 1
    gc.collect()
    assert captured() is None  # was kept until shutdown: a leak per closure queued in a loop


def test_a_failed_task_keeps_its_function_so_it_can_be_retried(tm: TaskManager) -> None:
    calls: list[int] = []

    def fails_once() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return len(calls)

    task_id = tm.queue_task(fails_once)
    run_until_idle(tm)
    assert tm.get_task_metadata(task_id)["state"] == "failure"
    tm.retry_task(task_id)
    run_until_idle(tm)
    assert tm.get_result(task_id) == 2


def test_a_workflows_lambdas_stay_for_its_next_runs(tm: TaskManager) -> None:
    with WorkflowManager(task_manager=tm) as wm:
        workflow_id = wm.register_workflow("twice")
        wm.add_task_to_workflow(workflow_id, Task(task_id="t", func=lambda: "again"))
        for _ in range(2):
            run_id = wm.start_workflow(workflow_id)
            run_until_idle(wm)
            assert wm.get_run(run_id).results == {"t": "again"}


def test_a_function_registered_for_a_task_not_stored_yet_outlives_the_success_of_another() -> None:
    registry = FunctionRegistry()
    func = lambda: 1  # noqa: E731
    first = registry.register(Task(task_id="a", func=func))
    registry.hold("a", first)
    second = registry.register(Task(task_id="b", func=func))  # b's insert waits for a lock meanwhile
    registry.release("a", first)  # a's success is applied
    assert registry.holder_of(second) == registry.holder  # b is stored as held, its function still here
    registry.hold("b", second)
    registry.release("b", second)
    assert registry.holder_of(second) is None  # let go once b succeeded too


def test_what_only_a_shut_down_engine_could_run_is_canceled_saying_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gone.db"
    tm = TaskManager(store=url, max_workers=0)
    held = tm.queue_task(lambda: 1)
    anyone = tm.queue_task("tests.helpers.tasks:add", args=(1, 2))
    tm.shutdown()
    with TaskManager(store=url, max_workers=0) as later:  # the next process to look
        meta = later.get_task_metadata(held)
        assert meta["state"] == "canceled" and "only the process that queued it held" in meta["reason"]
        assert later.get_task_metadata(anyone)["state"] == "queued"  # any worker runs that one


def test_claims_name_the_engine_as_holder_only_while_it_holds_a_function() -> None:
    registry = FunctionRegistry()
    assert registry.claiming_holder is None  # nothing can be held by it: the store walks the free tasks alone
    spec = registry.register(Task(task_id="one", func=lambda: 1))
    registry.hold("one", spec)
    assert registry.claiming_holder == registry.holder
    registry.release("one", spec)
    assert registry.claiming_holder is None


def test_functions_found_by_import_path_hold_nothing_so_claims_walk_the_free_tasks_alone() -> None:
    registry = FunctionRegistry()
    spec = registry.register(Task(task_id="add", func="tests.helpers.tasks:add", args=(1, 2)))
    assert registry.rebuild(spec).resolve()(1, 2) == 3  # its callable is cached here now
    assert registry.claiming_holder is None  # yet no task can be held by this registry
    registry.register(Task(task_id="kept", func=lambda: 1), for_good=True)  # a workflow's lambda: held for good
    assert registry.claiming_holder == registry.holder
