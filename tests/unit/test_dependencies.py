"""Dependencies: ordering, skipping downstream of a bad end, refusing cycles and unknown names, dynamic tasks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from tests.helpers.tasks import boom, ctx_first
from unified import engine as engine_module
from unified.engine import Engine
from unified.errors import (
    ConflictError,
    CycleError,
    DuplicateTaskError,
    StoreError,
    UnknownDependencyError,
    ValidationError,
)
from unified.graph import validate_graph
from unified.store import open_store
from unified.store.memory import MemoryStore
from unified.store.records import TaskRecord
from unified.task import Task, TaskContext
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.workflow.workflow import Workflow, WorkflowManager


def test_tasks_wait_for_their_dependencies(drained: TaskManager) -> None:
    order: list[str] = []
    drained.queue_task(lambda: order.append("a"), task_id="a")
    drained.queue_task(lambda: order.append("b"), task_id="b", dependencies=["a"])
    drained.queue_task(lambda: order.append("c"), task_id="c", dependencies=["a", "b"])
    assert drained.store.get_task("c").state == "pending"
    drained.run_until_idle()
    assert order == ["a", "b", "c"]


def test_unknown_dependency_and_duplicates_are_refused_before_anything_runs(drained: TaskManager) -> None:
    with pytest.raises(UnknownDependencyError, match="'ghost'"):
        drained.queue_task(lambda: 1, task_id="x", dependencies=["ghost"])
    drained.queue_task(lambda: 1, task_id="x")
    with pytest.raises(DuplicateTaskError, match="'x'"):
        drained.queue_task(lambda: 1, task_id="x")
    assert len(drained.store.list_tasks()) == 1


def test_a_cycle_is_refused_and_named() -> None:
    wf = Workflow("w", tasks=[Task(task_id="a", func=print)])
    wf.add_task(Task(task_id="b", func=print, dependencies=["a"]))
    with pytest.raises(CycleError, match=r"(b -> c -> b)|(c -> b -> c)") as info:
        validate_graph({"a": [], "b": ["a", "c"], "c": ["b"]})
    assert set(info.value.cycle) == {"b", "c"}
    with pytest.raises(UnknownDependencyError):
        wf.add_task(Task(task_id="z", func=print, dependencies=["nope"]))


def test_the_order_puts_every_dependency_first_and_a_cycle_behind_other_tasks_is_found() -> None:
    graph = {
        f"{k}-{i}": [f"{k - 1}-{i}", f"{k - 1}-{(7 * i + 3) % 10}"] if k else [] for k in range(5) for i in range(10)
    }
    graph = dict(reversed(graph.items()))  # dependants listed before what they depend on
    order = validate_graph(graph)
    position = {task_id: n for n, task_id in enumerate(order)}
    assert sorted(order) == sorted(graph)
    assert all(position[dep] < position[task_id] for task_id, deps in graph.items() for dep in deps)
    # a cycle x -> y -> z -> x reached from tasks outside it, with tasks downstream of it
    cyclic = {"root": [], "in": ["root", "x"], "x": ["root", "y"], "y": ["z"], "z": ["x"], "after": ["in", "z"]}
    with pytest.raises(CycleError) as info:
        validate_graph(cyclic)
    cycle = info.value.cycle
    assert sorted(cycle) == ["x", "y", "z"]
    assert all(cycle[(n + 1) % 3] in cyclic[task_id] for n, task_id in enumerate(cycle))  # each needs the next


def test_a_workflows_tasks_may_be_given_in_any_order_and_a_cycle_among_them_is_named() -> None:
    load, extract = Task(task_id="load", func=print, dependencies=["extract"]), Task(task_id="extract", func=print)
    wf = Workflow("w", tasks=[load, extract])
    assert list(wf.tasks) == ["extract", "load"]  # kept dependencies first
    wf.add_tasks([Task(task_id="report", func=print, dependencies=["audit"]),
                  Task(task_id="audit", func=print, dependencies=["load"])])  # fmt: skip
    assert list(wf.tasks) == ["extract", "load", "audit", "report"]
    with pytest.raises(CycleError, match=r"a -> b -> a|b -> a -> b"):
        Workflow("loop", tasks=[Task(task_id="a", func=print, dependencies=["b"]),
                                Task(task_id="b", func=print, dependencies=["a"])])  # fmt: skip
    with pytest.raises(DuplicateTaskError, match="'x' is given twice"):
        wf.add_tasks([Task(task_id="x", func=print), Task(task_id="x", func=print)])
    assert list(wf.tasks) == ["extract", "load", "audit", "report"]  # nothing refused was added


def test_a_self_dependency_is_a_cycle(drained: TaskManager) -> None:
    with pytest.raises(CycleError):
        drained.queue_task(lambda: 1, task_id="me", dependencies=["me"])
    wf = Workflow("w", tasks=[Task(task_id="a", func=print)])
    with pytest.raises(CycleError, match="me -> me"):
        wf.add_task(Task(task_id="me", func=print, dependencies=["a", "me"]))
    with pytest.raises(DuplicateTaskError, match="'a'"):
        wf.add_task(Task(task_id="a", func=print))
    assert list(wf.tasks) == ["a"]  # nothing refused was added


@pytest.mark.parametrize("bad_end", ["failure", "timeout", "canceled"])
def test_dependants_of_a_bad_end_are_skipped_with_a_reason(drained: TaskManager, bad_end: str) -> None:
    if bad_end == "failure":
        drained.queue_task(boom, task_id="up")
    elif bad_end == "timeout":
        drained.queue_task("tests.helpers.tasks:sleep_for", args=(5,), timeout=0.1, task_id="up")
    else:
        drained.queue_task(lambda: 1, task_id="up", dependencies=[])
        drained.cancel_task("up")
    drained.queue_task(lambda: 1, task_id="down", dependencies=["up"])
    drained.queue_task(lambda: 1, task_id="further", dependencies=["down"])
    drained.run_until_idle()
    assert drained.store.get_task("up").state == bad_end
    down = drained.get_task_metadata("down")
    assert down["state"] == "skipped" and "'up'" in down["reason"] and bad_end in down["reason"]
    assert drained.get_task_metadata("further")["state"] == "skipped"


def test_depending_on_an_already_failed_task_skips_at_once(drained: TaskManager) -> None:
    drained.queue_task(boom, task_id="up")
    drained.run_until_idle()
    drained.queue_task(lambda: 1, task_id="late", dependencies=["up"])
    assert drained.store.get_task("late").state == "skipped"


def test_upstream_results_reach_the_context(drained: TaskManager) -> None:
    drained.queue_task(lambda: 2, task_id="two")
    drained.queue_task(lambda: 3, task_id="three")
    total = drained.queue_task(lambda ctx: sum(ctx.upstream.values()), dependencies=["two", "three"])
    drained.run_until_idle()
    assert drained.get_result(total) == 5


def fan_out(ctx: TaskContext) -> int:
    children = [ctx.add_task(Task(task_id=f"child-{i}", func=lambda i=i: i * i)) for i in range(100)]
    ctx.add_task(Task(task_id="total", func=lambda ctx: sum(ctx.upstream.values()), dependencies=children))
    return len(children)


def test_dynamic_fan_out_of_100_tasks_and_a_final_task_in_a_workflow() -> None:
    with WorkflowManager() as wm:
        workflow_id = wm.register(Workflow("fan", tasks=[Task(task_id="fan", func=fan_out)]))
        run = wm.run_workflow(workflow_id, timeout=20)
    assert run.state == "success"
    assert len(run.tasks) == 102
    assert run.results["fan"] == 100
    assert run.results["total"] == sum(i * i for i in range(100))


def test_dynamic_tasks_from_an_ad_hoc_task(drained: TaskManager) -> None:
    def parent(ctx: TaskContext) -> str:
        return ctx.add_task(Task(task_id="kid", func=lambda: "kid ran", dependencies=[ctx.task_id]))

    parent_id = drained.queue_task(parent, task_id="parent")
    drained.run_until_idle()
    assert drained.get_result(parent_id) == "kid"
    assert drained.get_result("kid") == "kid ran"


def test_queued_and_added_tasks_declaring_ctx_first_take_positional_args(drained: TaskManager) -> None:
    def parent(ctx: TaskContext, n: int) -> str:
        return ctx.add_task(Task(task_id="kid", func=ctx_first, args=(n, 2), dependencies=[ctx.task_id]))

    queued = drained.queue_task(ctx_first, args=(21,), task_id="queued")
    drained.queue_task(parent, args=(7,), task_id="parent")
    drained.run_until_idle()
    assert drained.get_result(queued) == ["queued", 21, 0]
    assert drained.get_result("kid") == ["kid", 7, 2]


def test_a_closure_over_an_object_whose_repr_raises_is_queued_and_runs(drained: TaskManager) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    held = Unprintable()
    task_id = drained.queue_task(lambda: type(held).__name__)
    drained.run_until_idle()
    assert drained.get_result(task_id) == "Unprintable"


def test_ctx_add_task_and_wait_all_refuse_arguments_of_the_wrong_type(drained: TaskManager) -> None:
    refused: list[str] = []

    def parent(ctx: TaskContext) -> None:
        try:
            ctx.add_task(ctx_first)  # type: ignore[arg-type]
        except ValidationError as exc:
            refused.append(str(exc))

    task_id = drained.queue_task(parent)
    drained.run_until_idle()
    assert refused == ["ctx.add_task takes a Task, not function: wrap it in Task(func=...)"]
    with pytest.raises(ValidationError, match=r"wait_all takes a list of task ids, not one id as a string"):
        drained.wait_all(task_id, timeout=1)
    assert [m["state"] for m in drained.wait_all([task_id], timeout=1)] == ["success"]


def test_a_task_whose_attempt_has_ended_cannot_add_tasks(drained: TaskManager) -> None:
    refused: list[Exception] = []

    def canceled_parent(ctx: TaskContext) -> None:
        drained.cancel_task(ctx.task_id)  # as a cancel from elsewhere while its code runs on, ignoring ctx.cancelled
        try:
            ctx.add_task(Task(task_id="late-child", func=lambda: "ran"))
        except ConflictError as exc:
            refused.append(exc)

    drained.queue_task(canceled_parent, task_id="parent")
    drained.run_until_idle()
    assert "attempt 1 has ended" in str(refused[0])
    assert [t.task_id for t in drained.store.list_tasks()] == ["parent"]


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_a_retried_parent_adds_its_children_once_and_another_task_cannot_take_their_ids(
    url: str, tmp_path: Path, clock: FakeClock
) -> None:
    def flaky_fan(ctx: TaskContext) -> int:
        for i in range(3):
            ctx.add_task(Task(task_id=f"part-{i}", func="tests.helpers.tasks:add", args=(i, i)))
        if ctx.attempt == 1:
            raise RuntimeError("fails after adding its children")
        return ctx.attempt

    def squatter(ctx: TaskContext) -> None:
        ctx.add_task(Task(task_id="part-0", func="tests.helpers.tasks:add", args=(0, 0)))

    store = f"sqlite:///{tmp_path}/fan.db" if url == "sqlite" else url
    with WorkflowManager(task_manager=TaskManager(store=store, max_workers=0, clock=clock)) as wm:
        tasks = [Task(task_id="fan", func=flaky_fan, max_retries=1), Task(task_id="other", func=squatter)]
        run_id = wm.start_workflow(wm.register(Workflow("fan-retry", tasks=tasks)))
        wm.task_manager.run_until_idle()
        run = wm.get_run(run_id)
    assert run.tasks["fan"]["state"] == "success" and run.tasks["fan"]["attempts"] == 2
    assert [run.results[f"part-{i}"] for i in range(3)] == [0, 2, 4]
    assert run.tasks["other"]["state"] == "failure" and run.tasks["other"]["error"]["type"] == "DuplicateTaskError"


def test_a_child_added_while_the_store_is_away_for_a_moment_is_added_once_it_is_back(
    drained: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert, failures = drained.store.insert_tasks, [StoreError("connection lost"), StoreError("connection lost")]

    def away_twice(records: list) -> None:
        if failures and records[0].task_id == "child":
            raise failures.pop()
        insert(records)

    monkeypatch.setattr(drained.store, "insert_tasks", away_twice)
    monkeypatch.setattr(engine_module.time, "sleep", lambda seconds: None)  # the waits between tries
    parent = drained.queue_task(lambda ctx: ctx.add_task(Task(task_id="child", func="tests.helpers.tasks:add",
                                                              args=(1, 1))))  # fmt: skip
    drained.run_until_idle()
    assert drained.get_result(parent) == "child" and drained.get_result("child") == 2  # the parent failed before


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_children_without_ids_are_named_by_their_parent_and_a_retry_gets_them_back(
    url: str, tmp_path: Path, clock: FakeClock
) -> None:
    def flaky_fan(ctx: TaskContext) -> list[str]:
        added = [ctx.add_task(Task(func="tests.helpers.tasks:add", args=(i, i))) for i in range(3)]
        if ctx.attempt == 1:
            raise RuntimeError("fails after adding its children")
        return added

    store = f"sqlite:///{tmp_path}/fan.db" if url == "sqlite" else url
    with TaskManager(store=store, max_workers=0, clock=clock) as tm:
        parent = tm.queue_task(flaky_fan, max_retries=1)
        tm.run_until_idle()
        children = tm.get_result(parent)
        assert children == [f"{parent}.{n}" for n in (1, 2, 3)]  # the same three, not three more each attempt
        assert [tm.get_result(child) for child in children] == [0, 2, 4]
        assert len(tm.list_tasks(limit=100)) == 4


def test_a_name_a_parent_would_give_that_is_taken_is_passed_over(drained: TaskManager) -> None:
    def fan(ctx: TaskContext) -> list[str]:
        named = ctx.add_task(Task(task_id=f"{ctx.task_id}.1", func="tests.helpers.tasks:add", args=(1, 1)))
        return [named, ctx.add_task(Task(func="tests.helpers.tasks:add", args=(2, 2)))]

    wm = WorkflowManager(task_manager=drained)
    tasks = [Task(task_id="p", func=fan), Task(task_id="p.2", func="tests.helpers.tasks:add", args=(3, 3))]
    run_id = wm.start_workflow(wm.register(Workflow("taken", tasks=tasks)))
    drained.run_until_idle()
    run = wm.get_run(run_id)
    assert run.state == "success" and run.results["p"] == ["p.1", "p.3"]  # p.1 its own, p.2 the workflow's
    assert (run.results["p.1"], run.results["p.2"], run.results["p.3"]) == (2, 6, 4)


def test_dynamic_task_with_a_cycle_or_unknown_name_fails_its_parent(drained: TaskManager) -> None:
    def parent(ctx: TaskContext) -> None:
        ctx.add_task(Task(task_id="orphan", func=print, dependencies=["nobody"]))

    task_id = drained.queue_task(parent)
    drained.run_until_idle()
    meta = drained.get_task_metadata(task_id)
    assert meta["state"] == "failure" and meta["error"]["type"] == "UnknownDependencyError"


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_a_step_claimed_where_it_was_released_starts_without_reading_its_upstream(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/handoff.db" if url == "sqlite" else url)
    engine = Engine(store)
    engine.submit([Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 2)),
                   Task(task_id="b", func="tests.helpers.tasks:add", dependencies=["a"])])  # fmt: skip
    (a,) = engine.claim("w")
    with engine.batch():  # as a worker reports: the outcome and the next claim in one transaction
        engine.complete(a, "success", result=3)
        (b,) = engine.claim("w")
    monkeypatch.setattr(store, "get_tasks", lambda ids: pytest.fail(f"read {list(ids)} again"))
    _, ctx = engine.prepare(b, threading.Event())
    assert ctx.upstream == {"a": 3}
    monkeypatch.undo()
    _, again = engine.prepare(b, threading.Event())  # the handed-off results serve one start only
    assert again.upstream == {"a": 3}
    store.close()


def test_a_handed_off_result_is_the_stored_json_not_the_object_returned(tmp_path: Path) -> None:
    # a result JSON changes (int keys, tuples) reaches its dependant as a read would give it, on every attempt
    store = open_store(f"sqlite:///{tmp_path}/handoff-json.db")
    engine = Engine(store)
    engine.submit([Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 2)),
                   Task(task_id="b", func="tests.helpers.tasks:add", dependencies=["a"])])  # fmt: skip
    (a,) = engine.claim("w")
    with engine.batch():
        engine.complete(a, "success", result={1: (2, 3)})
        (b,) = engine.claim("w")
    handed_off = engine.prepare(b, threading.Event())[1].upstream
    assert handed_off == engine.prepare(b, threading.Event())[1].upstream == {"a": {"1": [2, 3]}}
    assert store.get_task("a").result == a.result == {"1": [2, 3]}
    store.close()


def test_a_release_that_rolls_back_hands_nothing_off(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/rollback.db")
    engine = Engine(store)
    engine.submit([Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 2)),
                   Task(task_id="b", func="tests.helpers.tasks:add", dependencies=["a"])])  # fmt: skip
    (a,) = engine.claim("w")
    with pytest.raises(RuntimeError), engine.batch():
        engine.complete(a.copy(), "success", result=3)
        assert [r.task_id for r in engine.claim("w")] == ["b"]
        raise RuntimeError("the commit never happens")
    assert store.get_task("b").state == "pending" and engine._handoff == {}
    store.close()


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_upstream_results_come_in_the_order_of_the_dependencies(url: str, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/order.db" if url == "sqlite" else url)
    engine = Engine(store)
    engine.submit([Task(task_id=n, func="tests.helpers.tasks:add", args=(1, 2)) for n in ("a", "b")]
                  + [Task(task_id="c", func="tests.helpers.tasks:add", dependencies=["b", "a"])])  # fmt: skip
    first, second = engine.claim("w", limit=2)
    engine.complete(first, "success", result=first.task_id)
    with engine.batch():
        engine.complete(second, "success", result=second.task_id)
        (c,) = engine.claim("w")
    handed_off = engine.prepare(c, threading.Event())[1].upstream
    read_back = engine.prepare(c, threading.Event())[1].upstream
    assert list(handed_off.items()) == list(read_back.items()) == [("b", "b"), ("a", "a")]
    store.close()


@pytest.fixture(params=["memory://", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on the memory store, then on a SQLite file."""
    store = open_store(f"sqlite:///{tmp_path}/engine.db" if request.param == "sqlite" else request.param)
    yield Engine(store)
    store.close()


def test_a_batch_of_reports_releases_a_fan_in_once_and_settles_its_run_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = engine.store
    fan_in = [Task(task_id=n, func="tests.helpers.tasks:add", args=(1, 2)) for n in ("a", "b", "bad")]
    fan_in += [Task(task_id="c", func="tests.helpers.tasks:add", dependencies=["a", "b"]),
               Task(task_id="d", func="tests.helpers.tasks:add", dependencies=["bad"])]  # fmt: skip
    run_id = engine.create_run(None, None, fan_in)
    a, b, bad = sorted(engine.claim("w", limit=3), key=lambda r: r.task_id)
    ready: list[int] = []
    engine.on_ready(ready.append)
    engine.complete_all([(a, "success", {"result": 3}), (b, "success", {"result": 4}),
                         (bad, "failure", {"error": {"type": "E", "message": "m"}, "retryable": False})])  # fmt: skip
    assert ready == [1]  # c, released once although both of its upstream tasks succeeded in this batch
    assert {r.task_id: r.state for r in store.run_tasks(run_id)} == {
        "a": "success", "b": "success", "bad": "failure", "c": "queued", "d": "skipped"}  # fmt: skip
    assert [(x.task_id, x.state) for x in (a, b, bad)] == [("a", "success"), ("b", "success"), ("bad", "failure")]
    assert [att.state for t in ("a", "b", "bad") for att in store.list_attempts(f"{run_id}.{t}")] == [
        "success", "success", "failure"]  # fmt: skip
    settled: list[str] = []
    settle = engine._settle_run
    monkeypatch.setattr(engine, "_settle_run", lambda rid, now: settled.append(rid) or settle(rid, now))
    (c,) = engine.claim("w")
    engine.complete_all([(c, "success", {"result": 7})])
    assert settled == [run_id] and store.get_run(run_id).state == "failure"


def test_ready_tasks_are_announced_at_commit_less_those_the_transaction_claimed_itself(engine: Engine) -> None:
    """A runner's report releases dependants and claims some for its free runners in the same transaction: only the
    rest wake the dispatcher, and only once the transaction commits."""
    add = "tests.helpers.tasks:add"
    engine.submit([Task(task_id="a", func=add, args=(1, 2))]
                  + [Task(task_id=n, func=add, args=(1, 2), dependencies=["a"]) for n in "bc"])  # fmt: skip
    ready: list[int] = []
    engine.on_ready(ready.append)
    (a,) = engine.claim("w")
    with engine.batch():
        engine.complete_all([(a, "success", {"result": 3})])  # releases b and c
        assert len(engine.claim("w", limit=1)) == 1
        assert ready == [], "announced before the commit, a worker could look for them before they exist"
    assert ready == [1]


class _UpstreamFinishesDuringInsert(MemoryStore):
    """A store where the upstream task of ``late`` is reported done by another thread just before ``late`` is
    inserted, as a runner finishing it while a dynamic task that depends on it is being added."""

    def __init__(self) -> None:
        super().__init__()
        self.finish: Callable[[], None] = lambda: None
        self.reporter: threading.Thread | None = None

    def insert_tasks(self, tasks: Iterable[TaskRecord]) -> None:
        tasks = list(tasks)
        if any(t.task_id == "late" for t in tasks):
            self.reporter = threading.Thread(target=self.finish)
            self.reporter.start()
            self.reporter.join(0.3)  # done at once when nothing holds the upstream task; else it waits its turn
        super().insert_tasks(tasks)


def test_a_task_added_while_its_upstream_task_finishes_is_released() -> None:
    store = _UpstreamFinishesDuringInsert()
    engine = Engine(store)
    engine.submit([Task(task_id="up", func="tests.helpers.tasks:add", args=(1, 2))])
    (running,) = engine.claim("w")
    store.finish = lambda: engine.complete(running, "success", result=3)
    engine.submit([Task(task_id="late", func="tests.helpers.tasks:add", args=(0, 0), dependencies=["up"])])
    assert store.reporter is not None
    store.reporter.join(10)
    assert store.get_task("up").state == "success"
    assert store.get_task("late").state == "queued", "released by the finish, or queued as its upstream was done"


@pytest.mark.parametrize("claim_in_report", [True, False])
def test_a_dependant_released_and_claimed_in_one_transaction_is_written_once(
    drained: TaskManager, claim_in_report: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, store = drained.engine, drained.store
    drained.queue_task(lambda: 1, task_id="a")
    drained.queue_task(lambda: 2, task_id="b", dependencies=["a"])
    moves: list[tuple[str, str | None, str]] = []
    update_tasks, apply_outcomes = store.update_tasks, store.apply_outcomes
    monkeypatch.setattr(store, "update_tasks", lambda ms: moves.extend((m[0], m[1], m[3].get("state")) for m in ms)
                        or update_tasks(ms))  # fmt: skip
    # an outcome's move goes through apply_outcomes (which need not call update_tasks)
    monkeypatch.setattr(store, "apply_outcomes", lambda ms, *rest: moves.extend((m[0], m[1], m[3].get("state"))
                        for m in ms) or apply_outcomes(ms, *rest))  # fmt: skip
    [a] = engine.claim("w", 1)
    with engine.batch():
        engine.complete(a, "success", result=1)
        taken = engine.claim("w", 1) if claim_in_report else []
    b = store.get_task("b")
    assert [(i, s) for i, s, _ in moves] == [("a", "running")] + ([] if claim_in_report else [("b", "pending")])
    assert [t.id for t in taken] == (["b"] if claim_in_report else [])
    assert b.state == ("running" if claim_in_report else "queued")
    assert b.queued_at == drained.clock.now()
    if claim_in_report:  # its attempt starts with the upstream results the release read
        assert engine.prepare(taken[0], engine.cancel_event("b"))[1].upstream == {"a": 1}
