"""Workflows: registration, edits, frozen versions with hashes, runs of earlier versions, run results."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tasks import add, boom
from tests.helpers.together import at_once
from unified.errors import ConflictError, CycleError, DuplicateTaskError, NotFoundError, ValidationError
from unified.graph import graph_hash
from unified.scheduler import When
from unified.store import sql_workflows
from unified.task import Task, TaskContext
from unified.task_manager import TaskManager
from unified.testing import run_until_idle
from unified.workflow.workflow import Workflow, WorkflowManager


@pytest.fixture
def wm(drained: TaskManager) -> WorkflowManager:
    return WorkflowManager(task_manager=drained)


def run(wm: WorkflowManager, workflow_id: str, **kwargs):
    run_id = wm.start_workflow(workflow_id, **kwargs)
    run_until_idle(wm)
    return wm.get_run(run_id)


def test_edits_coalesce_and_the_first_run_after_an_edit_freezes_a_version(wm: WorkflowManager) -> None:
    wid = wm.register_workflow("etl", "extract and load")
    wm.add_task_to_workflow(wid, Task(task_id="a", func=add, args=(1, 2)))
    wm.add_task_to_workflow(wid, Task(task_id="b", func=add, args=(3, 4), dependencies=["a"]))
    assert wm.list_versions(wid) == []
    first = run(wm, wid)
    second = run(wm, wid)
    assert first.version == second.version == 1
    wm.add_task_to_workflow(wid, Task(task_id="c", func=add, args=(5, 6)))
    wm.remove_task_from_workflow(wid, "c")
    assert run(wm, wid).version == 1, "an edit undone before a run is no new version"
    wm.add_task_to_workflow(wid, Task(task_id="c", func=add, args=(5, 6)))
    third = run(wm, wid)
    assert third.version == 2 and third.results == {"a": 3, "b": 7, "c": 11}
    versions = wm.list_versions(wid)
    assert [v["number"] for v in versions] == [1, 2]
    assert versions[0]["hash"] != versions[1]["hash"] and len(versions[1]["hash"]) == 64
    assert [t["task_id"] for t in versions[0]["tasks"]] == ["a", "b"]
    assert wm.get_workflow(wid)["current_version"] == 2


def test_a_run_uses_the_hash_the_store_keeps_and_hashes_a_draft_stored_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    with WorkflowManager(task_manager=TaskManager(store=url, max_workers=0)) as wm:
        wid = wm.register(Workflow("w", tasks=[Task(task_id="a", func=add, args=(1, 2))]))
        hashed: list[int] = []
        monkeypatch.setattr(sql_workflows, "graph_hash", lambda specs: hashed.append(len(specs)) or graph_hash(specs))
        assert run(wm, wid).version == run(wm, wid).version == 1 and hashed == [], "the store's hash was enough"
        with wm.store._engine.begin() as conn:  # type: ignore[attr-defined]  # a row from before the hash was kept
            conn.exec_driver_sql("UPDATE workflows SET draft_hash = NULL")
        assert run(wm, wid).version == 1 and hashed == [1], "hashed at the start, and still the same version"


def test_an_earlier_version_runs_while_its_callables_exist(wm: WorkflowManager) -> None:
    wid = wm.register(Workflow("w", tasks=[Task(task_id="t", func=lambda: "v1")]))
    assert run(wm, wid).results == {"t": "v1"}
    wm.register(Workflow("w", tasks=[Task(task_id="t", func=lambda: "v2")]))
    assert run(wm, wid).results == {"t": "v2"}
    old = run(wm, wid, version=1)
    assert (old.version, old.results) == (1, {"t": "v1"})


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:  # a user's repr may fail: the workflow's hash must not depend on it
        raise RuntimeError("no repr")


def _reads(value: _Named):
    return lambda: value.name


def test_a_closure_over_another_object_is_a_new_version_and_over_the_same_one_is_not(wm: WorkflowManager) -> None:
    first, second = _Named("first"), _Named("second")
    wid = wm.register(Workflow("w", tasks=[Task(task_id="t", func=_reads(first))]))
    assert run(wm, wid).results == {"t": "first"}
    wm.register(Workflow("w", tasks=[Task(task_id="t", func=_reads(first))]))
    assert run(wm, wid).version == 1
    wm.register(Workflow("w", tasks=[Task(task_id="t", func=_reads(second))]))
    again = run(wm, wid)
    assert (again.version, again.results) == (2, {"t": "second"})  # not version 1's closure, over the first


def test_an_earlier_version_whose_lambda_is_gone_says_which_one(drained: TaskManager) -> None:
    first = WorkflowManager(task_manager=drained)
    wid = first.register(Workflow("w", tasks=[Task(task_id="t", func=lambda: "v1")]))
    run(first, wid)
    # a new process knows the store but not the lambda: simulate with a fresh engine on the same store
    other = WorkflowManager(task_manager=TaskManager(store=drained.store, max_workers=0, clock=drained.clock))
    with pytest.raises(ValidationError, match=r"version 1 of workflow 'w' cannot run: task 't'.*lambda"):
        other.start_workflow(wid, version=1)
    assert len(other.list_runs(wid)) == 1  # the refused start stored no run


def test_a_task_changing_its_arguments_does_not_change_the_next_run(wm: WorkflowManager) -> None:
    wid = wm.register(
        Workflow("m", tasks=[Task(task_id="t", func=lambda seen: seen.append(1) or len(seen), args=([],))])
    )
    assert [run(wm, wid).results for _ in range(3)] == [{"t": 1}] * 3
    assert wm.store.get_workflow(wid).tasks[0]["args"] == [[]]


def test_registering_a_name_another_process_took_meanwhile_updates_that_workflow(
    wm: WorkflowManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = wm.register(Workflow("shared", tasks=[Task(task_id="a", func=add, args=(1, 2))]))
    real = wm.store.find_workflow
    looked: list[str] = []

    def stale_then_real(name: str) -> object:
        looked.append(name)
        return None if len(looked) == 1 else real(name)  # the first look predates the other process's insert

    monkeypatch.setattr(wm.store, "find_workflow", stale_then_real)
    assert wm.register(Workflow("shared", tasks=[Task(task_id="b", func=add, args=(2, 3))])) == first
    assert [t["task_id"] for t in wm.get_workflow(first)["tasks"]] == ["b"] and len(looked) == 2
    assert wm.store.workflow_names() == {first: "shared"}


def test_each_run_records_params_and_trigger(wm: WorkflowManager) -> None:
    wid = wm.register(Workflow("p", tasks=[Task(task_id="t", func=lambda ctx: ctx.params["x"] * 2)]))
    result = run(wm, wid, params={"x": 21})
    assert result.results == {"t": 42} and result.params == {"x": 21} and result.trigger == "manual"
    assert [r.run_id for r in wm.list_runs(wid)] == [result.run_id]


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("params", "says"),
    [(nested(900), "more than 200 deep"), ({"a": "\ud800"}, "surrogate"), ({"n": 10**5000}, "4300 digits")],
)
def test_params_that_could_not_be_copied_stored_or_shown_are_refused_before_the_run(
    wm: WorkflowManager, params: dict, says: str
) -> None:
    wid = wm.register(Workflow("p", tasks=[Task(task_id="t", func=add, args=(1, 2))]))
    with pytest.raises(ValidationError, match=says):  # was a RecursionError, or a run whose pages answered 500
        wm.start_workflow(wid, params=params)
    with pytest.raises(ValidationError, match=says):
        wm.schedule_workflow(wid, interval_seconds=60, params=params)
    assert wm.list_runs(wid) == [] and wm.store.list_schedules() == []


def test_a_task_that_changes_its_params_changes_them_for_itself_only(wm: WorkflowManager) -> None:
    def meddle(ctx: TaskContext) -> None:
        ctx.params["day"] = "changed"
        ctx.params["nested"]["k"] = "changed"

    tasks = [Task(task_id="m", func=meddle), Task(task_id="r", func=lambda ctx: ctx.params, dependencies=["m"])]
    given = {"day": "2026-01-01", "nested": {"k": "v"}}
    result = run(wm, wm.register(Workflow("meddled", tasks=tasks)), params=given)
    assert result.results["r"] == given == {"day": "2026-01-01", "nested": {"k": "v"}} == result.params


def test_a_failing_task_fails_the_run_and_retry_run_reruns_it_and_what_it_skipped(wm: WorkflowManager) -> None:
    state = {"fail": True}

    def sometimes() -> str:
        if state["fail"]:
            raise RuntimeError("not yet")
        return "fine"

    wid = wm.register(
        Workflow(
            "r", tasks=[Task(task_id="a", func=sometimes), Task(task_id="b", func=lambda: "b", dependencies=["a"])]
        )
    )
    failed = run(wm, wid)
    assert failed.state == "failure"
    assert failed.tasks["b"]["state"] == "skipped"
    state["fail"] = False
    assert wm.retry_run(failed.run_id) == 2
    run_until_idle(wm)
    again = wm.get_run(failed.run_id)
    assert again.state == "success" and again.results == {"a": "fine", "b": "b"}


def test_arguments_of_the_wrong_type_are_validation_errors_that_say_what_to_pass(wm: WorkflowManager) -> None:
    wid = wm.register_workflow("typed")
    with pytest.raises(ValidationError, match=r"add_task_to_workflow takes a Task, not function: wrap it in Task"):
        wm.add_task_to_workflow(wid, add)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="a Workflow takes a Task, not function"):
        Workflow("w", tasks=[add])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=r"Workflow\.add_task takes a Task, not str"):
        Workflow("w").add_task("tests.helpers.tasks:add")  # type: ignore[arg-type]
    wm.add_task_to_workflow(wid, Task(task_id="a", func=add, args=(1, 2)))
    assert run(wm, wid).results == {"a": 3}
    with pytest.raises(ValidationError, match=r"params must be a dict of parameter names \(strings\) to values"):
        wm.start_workflow(wid, params=[1])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="params must be a dict"):
        wm.schedule_workflow(wid, interval_seconds=60, params=[1])  # type: ignore[arg-type]
    for version in ("1", True, 1.0, 0):  # "1" ran version 1 on SQL stores and was no version on the memory store
        with pytest.raises(ValidationError, match="version must be a whole number of at least 1"):
            wm.start_workflow(wid, version=version)  # type: ignore[arg-type]
    assert run(wm, wid, version=1).results == {"a": 3}
    assert len(wm.list_runs(wid)) == 2 and wm.list_schedules() == []


def test_timeout_fails_a_run(wm: WorkflowManager) -> None:
    wid = wm.register(
        Workflow("t", tasks=[Task(task_id="slow", func="tests.helpers.tasks:sleep_for", args=(5,), timeout=0.1)])
    )
    assert run(wm, wid).state == "failure"


def test_bad_workflow_requests(wm: WorkflowManager) -> None:
    wid = wm.register_workflow("x")
    with pytest.raises(ValidationError, match="no tasks"):
        wm.start_workflow(wid)
    wm.add_task_to_workflow(wid, Task(task_id="a", func=boom))
    wm.add_task_to_workflow(wid, Task(task_id="b", func=boom, dependencies=["a"]))
    with pytest.raises(ConflictError, match="depend on 'a'"):
        wm.remove_task_from_workflow(wid, "a")
    with pytest.raises(ConflictError, match="already used"):
        wm.add_task_to_workflow(wid, Task(task_id="a", func=boom))
    with pytest.raises(NotFoundError, match="no workflow"):
        wm.get_workflow("missing")
    with pytest.raises(NotFoundError, match="no run"):
        wm.get_run("missing")
    with pytest.raises(NotFoundError, match="no version 9"):
        wm.start_workflow(wid, version=9)
    with pytest.raises(ValidationError, match="non-empty name"):
        wm.register_workflow(" ")
    with pytest.raises(ValidationError, match=r"non-empty name \(a string\), not int"):
        wm.register_workflow(5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="description must be a string, not list"):
        wm.register_workflow("y", description=["z"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="register takes a Workflow, not str: register_workflow"):
        wm.register("z")  # type: ignore[arg-type]


def test_run_workflow_blocks_until_done_with_real_threads() -> None:
    with WorkflowManager() as wm:
        wid = wm.register(Workflow("w", tasks=[Task(task_id="a", func=add, args=(2, 3))]))
        result = wm.run_workflow(wid, timeout=10)
    assert result.state == "success" and result.results == {"a": 5}
    assert result.tasks["a"]["history"][0]["state"] == "success"


def test_a_schedule_declared_in_code_is_kept_in_step(drained: TaskManager) -> None:
    from unified.scheduler import When

    wm = WorkflowManager(task_manager=drained)
    tasks = [Task(task_id="a", func=add, args=(1, 2))]
    wid = wm.register(Workflow("nightly", tasks=tasks, schedule=When(cron="0 2 * * *", timezone="Europe/Berlin")))
    first = wm.list_schedules()
    assert [(s["cron"], s["timezone"]) for s in first] == [("0 2 * * *", "Europe/Berlin")]
    wm.register(Workflow("nightly", tasks=tasks, schedule=When(cron="0 2 * * *", timezone="Europe/Berlin")))
    assert [s["schedule_id"] for s in wm.list_schedules()] == [first[0]["schedule_id"]], "unchanged: kept as is"
    wm.register(Workflow("nightly", tasks=tasks, schedule=When(cron="0 3 * * *", timezone="Europe/Berlin")))
    assert [s["cron"] for s in wm.list_schedules()] == ["0 3 * * *"]
    wm.register(Workflow("nightly", tasks=tasks))
    assert wm.list_schedules() == []
    assert wm.get_workflow(wid)["name"] == "nightly"


def test_a_declared_schedule_follows_its_bounds_and_an_equal_one_is_kept(wm: WorkflowManager) -> None:
    tasks = [Task(task_id="a", func=add, args=(1, 2))]
    wm.register(Workflow("bounded", tasks=tasks, schedule=When(cron="@daily")))
    (kept,) = wm.list_schedules()
    wm.register(Workflow("bounded", tasks=tasks, schedule=When(cron="@daily")))
    assert [s["schedule_id"] for s in wm.list_schedules()] == [kept["schedule_id"]], "an alias is the same cron"
    wm.register(Workflow("bounded", tasks=tasks, schedule=When(cron="@daily", end_at="2020-01-01T00:00:00Z")))
    (ended,) = wm.list_schedules()
    assert ended["end_at"].startswith("2020-01-01") and ended["next_fire_time"] is None


def test_deleting_a_workflow_deletes_its_schedules_and_keeps_the_others(wm: WorkflowManager) -> None:
    tasks = [Task(task_id="a", func=add, args=(1, 2))]
    doomed = wm.register(Workflow("doomed", tasks=tasks, schedule=When(interval_seconds=60)))
    kept = wm.register(Workflow("kept", tasks=tasks, schedule=When(interval_seconds=60)))
    wm.schedule_workflow(doomed, interval_seconds=30)
    wm.delete_workflow(doomed)
    assert [s["target"]["workflow_id"] for s in wm.list_schedules()] == [kept]


def test_register_refuses_a_graph_changed_after_the_workflow_checked_it(wm: WorkflowManager) -> None:
    a, b = Task(task_id="a", func=add, args=(1, 2)), Task(task_id="b", func=add, args=(1, 2), dependencies=["a"])
    workflow = Workflow("changed", tasks=[a, b])
    a.dependencies = ["b"]
    with pytest.raises(CycleError, match="a -> b -> a"):
        wm.register(workflow)
    workflow.tasks["other-key"] = b
    a.dependencies = []
    with pytest.raises(DuplicateTaskError, match="'b'"):
        wm.register(workflow)
    assert wm.list_workflows() == []


def test_concurrent_edits_of_one_draft_keep_every_task(tmp_path: Path) -> None:
    with WorkflowManager(task_manager=TaskManager(store=f"sqlite:///{tmp_path}/w.db", max_workers=0)) as wm:
        wid = wm.register_workflow("edited at once")
        adds = [lambda i=i: wm.add_task_to_workflow(wid, Task(task_id=f"t{i}", func=add)) for i in range(8)]
        added, errors = at_once(adds)
        assert errors == [] and sorted(added) == sorted(f"t{i}" for i in range(8))
        assert sorted(t["task_id"] for t in wm.get_workflow(wid)["tasks"]) == sorted(added)


def test_concurrent_starts_of_a_changed_workflow_freeze_one_version(tmp_path: Path) -> None:
    with WorkflowManager(task_manager=TaskManager(store=f"sqlite:///{tmp_path}/w.db", max_workers=0)) as wm:
        wid = wm.register(Workflow("w", tasks=[Task(task_id="a", func=add, args=(1, 2))]))
        started, errors = at_once([lambda: wm.start_workflow(wid)] * 6)
        assert errors == [] and len(started) == 6, "each start got its run (before: 5 of 6 ConflictErrors)"
        assert [v["number"] for v in wm.list_versions(wid)] == [1]
        assert {wm.get_run(r).version for r in started} == {1}
