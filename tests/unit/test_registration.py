"""``@unified.task`` registers functions by name; the workflows folder reloads code the engine then runs afresh."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import unified
from unified.errors import NotFoundError, ValidationError
from unified.registration import REGISTRY, TaskRegistry
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import FakeClock
from unified.workflow.workflow import WorkflowManager
from unified.workflows_folder import WorkflowsFolder, load_workflows


def test_unified_task_registers_a_bare_function_and_returns_it_unchanged() -> None:
    @unified.task
    def registration_bare(x: int) -> int:
        return x + 1

    assert registration_bare(1) == 2
    entry = REGISTRY.get("registration_bare")
    assert entry.func is registration_bare
    assert entry.options == {}


def test_unified_task_takes_a_name_and_task_options() -> None:
    @unified.task(name="registration_named", max_retries=3, timeout=5)
    def some_function() -> str:
        return "ok"

    entry = REGISTRY.get("registration_named")
    task = entry.build("t1", priority=7)
    assert (task.task_id, task.name, task.max_retries, task.timeout, task.priority) == (
        "t1", "registration_named", 3, 5, 7,
    )  # fmt: skip


def test_the_module_still_holds_the_seeds_names() -> None:
    from unified.task import Task as SeedTask

    assert SeedTask is Task
    assert unified.task.Task is Task
    assert callable(unified.task)


def test_bad_registrations_say_what_to_do() -> None:
    registry = TaskRegistry()
    with pytest.raises(ValidationError, match="unknown task options"):
        registry.add(lambda: None, "x", retries=3)
    with pytest.raises(ValidationError, match="timeout"):
        registry.add(lambda: None, "x", timeout=-1)
    with pytest.raises(ValidationError, match="decorates functions"):
        registry.add(42, "x")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match=r"@unified\.task"):
        registry.get("nope")


FLOW = """
from unified.task import Task
from unified.workflow.workflow import Workflow


def answer() -> str:
    return {value!r}


reloadable = Workflow("reloadable", "", [Task(task_id="answer", func=answer)])
"""


@pytest.fixture
def workflows() -> Iterator[WorkflowManager]:
    tm = TaskManager(store="memory://", max_workers=0, clock=FakeClock(), run_scheduler=False)
    yield WorkflowManager(task_manager=tm)
    tm.shutdown()


def _run(manager: WorkflowManager, workflow_id: str) -> object:
    run_id = manager.start_workflow(workflow_id)
    manager.task_manager.run_until_idle()
    return manager.get_run(run_id).results["answer"]


def test_a_reload_runs_the_new_code_of_the_folders_functions(tmp_path: Path, workflows: WorkflowManager) -> None:
    module = tmp_path / "registration_reload_flow.py"
    module.write_text(textwrap.dedent(FLOW.format(value="old")))
    folder = WorkflowsFolder(tmp_path)
    report = load_workflows(folder, workflows)
    assert [w.name for w in report.workflows] == ["reloadable"]
    workflow_id = workflows.list_workflows()[0]["workflow_id"]
    assert _run(workflows, workflow_id) == "old"  # the engine has now resolved and cached the import path

    module.write_text(textwrap.dedent(FLOW.format(value="new")))
    load_workflows(folder, workflows)
    assert _run(workflows, workflow_id) == "new"
    sys.modules.pop("registration_reload_flow", None)


def test_a_reload_reads_the_helper_modules_of_the_folder_again(tmp_path: Path, workflows: WorkflowManager) -> None:
    (tmp_path / "_registration_helper.py").write_text("def answer() -> str:\n    return 'old'\n")
    flow = (
        "from _registration_helper import answer\n"
        + FLOW.split("\n\n\n", 1)[0]
        + "\n\n\n"
        + FLOW.rsplit("\n\n\n", 1)[1]
    )
    (tmp_path / "registration_helper_flow.py").write_text(textwrap.dedent(flow))
    folder = WorkflowsFolder(tmp_path)
    load_workflows(folder, workflows)
    workflow_id = workflows.list_workflows()[0]["workflow_id"]
    assert _run(workflows, workflow_id) == "old"

    (tmp_path / "_registration_helper.py").write_text("def answer() -> str:\n    return 'new'\n")
    load_workflows(folder, workflows)
    assert _run(workflows, workflow_id) == "new"
    for name in ("registration_helper_flow", "_registration_helper"):
        sys.modules.pop(name, None)


def test_a_reload_reads_again_a_helper_a_task_imported_after_the_load(
    tmp_path: Path, workflows: WorkflowManager
) -> None:
    (tmp_path / "_registration_lazy_helper.py").write_text("VALUE = 'old'\n")
    lazy = "def answer() -> str:\n    from _registration_lazy_helper import VALUE\n\n    return VALUE\n"
    flow = FLOW.split("def answer", 1)[0] + lazy + "\n\n" + FLOW.rsplit("\n\n\n", 1)[1]
    (tmp_path / "registration_lazy_flow.py").write_text(textwrap.dedent(flow))
    folder = WorkflowsFolder(tmp_path)
    load_workflows(folder, workflows)
    workflow_id = workflows.list_workflows()[0]["workflow_id"]
    assert _run(workflows, workflow_id) == "old"  # the helper is imported now, by the task

    (tmp_path / "_registration_lazy_helper.py").write_text("VALUE = 'new'\n")
    load_workflows(folder, workflows)
    assert _run(workflows, workflow_id) == "new"
    for name in ("registration_lazy_flow", "_registration_lazy_helper"):
        sys.modules.pop(name, None)


def test_a_reload_leaves_alone_modules_imported_from_the_folder_before_it(
    tmp_path: Path, workflows: WorkflowManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "registration_vendored").mkdir()  # as a virtual environment's packages kept inside the folder
    (tmp_path / "registration_vendored" / "__init__.py").write_text("MARK = object()\n")
    (tmp_path / "registration_vendored_flow.py").write_text(
        "import registration_vendored\n" + textwrap.dedent(FLOW.format(value="v"))
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import registration_vendored  # type: ignore[import-not-found]

    for _ in range(2):
        report = load_workflows(WorkflowsFolder(tmp_path), workflows)
        assert [w.name for w in report.workflows] == ["reloadable"] and report.errors == []
        assert sys.modules["registration_vendored"] is registration_vendored, "imported before: not ours to drop"
    for name in ("registration_vendored_flow", "registration_vendored"):
        sys.modules.pop(name, None)


def test_forget_drops_only_the_named_modules() -> None:
    from unified.engine import FunctionRegistry

    functions = FunctionRegistry()
    functions.rebuild(Task(func="json:dumps", task_id="a").spec())
    functions.rebuild(Task(func="os.path:join", task_id="b").spec())
    assert functions.forget(["json"]) == 1
    assert functions.forget(["json"]) == 0
    assert functions.forget(["os.path"]) == 1


def test_a_registered_function_is_stored_by_import_path_so_other_processes_find_it(tmp_path: Path) -> None:
    # @task validates while the module is still being imported, before its name is bound: that miss must not stick
    (tmp_path / "registration_path_flow.py").write_text(
        "import unified\n\n@unified.task(name='registration_path_job', max_retries=2)\ndef job(day):\n    return day\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import registration_path_flow  # noqa: F401  (registers the job)

        task = REGISTRY.get("registration_path_job").build("t1")
        assert task.spec()["func"] == "registration_path_flow:job"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("registration_path_flow", None)


def test_the_library_runs_a_registered_function_by_its_name(drained: TaskManager) -> None:
    @unified.task(name="registration_by_name")
    def shout(word: str) -> str:
        return word.upper()

    task_id = drained.queue_task("registration_by_name", args=("hi",))
    drained.run_until_idle()
    assert drained.get_result(task_id) == "HI"
    with pytest.raises(ValidationError, match=r"neither an import path .* nor the name of a function registered"):
        drained.queue_task("registration_no_such_name")
