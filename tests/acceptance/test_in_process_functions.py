"""Lambdas, closures and functions of ``__main__`` run only where they exist: in the engine that queued them.

Other engines on the same database (another TaskManager of the process, a notebook's re-created one, a worker
process) pass such tasks by instead of claiming them and failing them for good."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.workers import ROOT, Fleet
from unified.task import Task
from unified.task_manager import TaskManager
from unified.workflow.workflow import WorkflowManager

TASKS = 60


def test_two_managers_on_one_file_each_run_their_own_closures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    with TaskManager(store=url, max_workers=2), WorkflowManager(store=url) as wm:  # two pools claiming
        workflow_id = wm.register_workflow("closures")
        for i in range(TASKS):
            # each takes a moment, long enough for the other pool to hear of the queued ones
            wm.add_task_to_workflow(workflow_id, Task(task_id=f"t{i}", func=lambda i=i: time.sleep(0.005) or i * 2))
        result = wm.run_workflow(workflow_id, timeout=60)
        assert result.state == "success", [m["error"] for m in result.tasks.values() if m["error"]][:1]
        assert result.results == {f"t{i}": i * 2 for i in range(TASKS)}
        assert all(m["attempts"] == 1 for m in result.tasks.values())


def test_a_worker_process_passes_lambdas_by_and_runs_the_rest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    with TaskManager(store=url, max_workers=0, run_scheduler=False) as tm:  # queues only
        fleet = Fleet(url, tmp_path, concurrency=2)
        fleet.start(1)
        try:
            fleet.wait_ready()
            held = [tm.queue_task(lambda i=i: i, priority=5) for i in range(10)]
            free = tm.queue_task("tests.helpers.tasks:add", args=(2, 3))
            assert tm.get_result(free, timeout=30) == 5
            records = tm.store.get_tasks(held)
            assert {(r.state, r.attempts) for r in records} == {("queued", 0)}  # passed by, not failed
        finally:
            assert all(code == 0 for code in fleet.stop()), "the worker stopped cleanly"
        with TaskManager(store=url, max_workers=1) as late:  # another engine of this process: not theirs either
            late.wait(late.queue_task("tests.helpers.tasks:add", args=(0, 0)), timeout=30)
            assert {r.state for r in tm.store.get_tasks(held)} == {"queued"}


SCRIPT = """
import sys
from unified.task import Task
from unified.workflow.workflow import Workflow, WorkflowManager
with WorkflowManager(store=sys.argv[1]) as wm:
    tasks = [Task(task_id="a", func=lambda: 20), Task(task_id="b", func=lambda ctx: ctx.upstream["a"] + 1,
                                                      dependencies=["a"])]
    result = wm.run_workflow(wm.register(Workflow("lambdas", tasks=tasks)), timeout=30)
    print(result.state, result.version, result.results["b"])
"""


def test_a_script_of_lambdas_runs_its_workflow_again_in_a_new_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/script.db"
    outputs = [
        subprocess.run([sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=60, cwd=ROOT)
        for _ in range(2)
    ]
    # the second process's draft hashes as version 1, whose refs were the first process's: it runs with its own
    assert [o.stdout.split() for o in outputs] == [["success", "1", "21"]] * 2, outputs[-1].stderr[-2000:]
