"""The seed's Getting Started example runs unchanged and gives the documented results."""

from __future__ import annotations


def test_seed_example_runs_unchanged() -> None:
    from unified.task import Task
    from unified.task_manager import TaskManager
    from unified.workflow.workflow import Workflow, WorkflowManager

    task_manager = TaskManager()
    task_id = task_manager.queue_task(func=lambda: "Hello, World!", timeout=10, max_retries=3)
    metadata = task_manager.get_task_metadata(task_id)

    workflow_manager = WorkflowManager()
    workflow_id = workflow_manager.register_workflow(name="My Workflow", description="Sample workflow")
    task1 = Task(task_id="task1", func=lambda: "Step 1")
    task2 = Task(task_id="task2", func=lambda: "Step 2", dependencies=["task1"])
    workflow_manager.add_task_to_workflow(workflow_id, task1)
    workflow_manager.add_task_to_workflow(workflow_id, task2)
    result = workflow_manager.run_workflow(workflow_id)

    assert Workflow is not None
    assert metadata["task_id"] == task_id
    assert metadata["state"] in {"queued", "running", "success"}
    assert result.state == "success"
    assert result.results["task2"] == "Step 2"
    assert result.results["task1"] == "Step 1"
    final = task_manager.wait(task_id, timeout=10)
    assert final["state"] == "success"
    assert final["result"] == "Hello, World!"
    assert task_manager.get_task_metadata(task_id)["result"] == "Hello, World!"
    task_manager.shutdown()
    workflow_manager.shutdown()
