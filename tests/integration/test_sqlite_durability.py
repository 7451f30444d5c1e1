"""Durability on SQLite: history survives a restart, and work survives kill -9 of the process running it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unified.task import Task
from unified.task_manager import TaskManager
from unified.workflow.workflow import Workflow, WorkflowManager

ROOT = Path(__file__).resolve().parents[2]


def test_history_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/unified.db"
    with WorkflowManager(store=url) as wm:
        tm = wm.task_manager
        tm.add_alert_handler(lambda alert: None, events=["task_failed"])
        ok = tm.queue_task("tests.helpers.tasks:add", args=(2, 3), task_id="ok")
        bad = tm.queue_task("tests.helpers.tasks:boom", task_id="bad")
        logged = tm.queue_task("tests.helpers.tasks:with_context", task_id="logged")
        workflow_id = wm.register(Workflow("w", tasks=[Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 1))]))
        run = wm.run_workflow(workflow_id, timeout=10)
        for task_id in (ok, bad, logged):
            tm.wait(task_id, timeout=10)

    with WorkflowManager(store=url) as again:
        tm = again.task_manager
        assert tm.get_task_metadata("ok")["result"] == 5
        failed = tm.get_task_metadata("bad")
        assert failed["state"] == "failure" and "Traceback" in failed["history"][0]["traceback"]
        assert any(line["message"] == "hello from logged" for line in tm.get_task_logs("logged"))
        assert tm.get_task_metadata("logged")["metadata"] == {"rows": 3}
        assert again.get_run(run.run_id).results == {"a": 2}
        assert [v["number"] for v in again.list_versions(workflow_id)] == [1]
        assert again.get_workflow(workflow_id)["name"] == "w"
        assert [a.event for a in tm.store.list_alerts()] == ["task_failed"]
        assert {m["task_id"] for m in tm.list_tasks()} >= {"ok", "bad", "logged"}


def test_a_result_that_is_not_json_fails_the_task_clearly(tmp_path: Path) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path}/u.db", max_workers=0) as tm:
        task_id = tm.queue_task("tests.helpers.tasks:not_json", max_retries=3)
        tm.run_until_idle()
        meta = tm.get_task_metadata(task_id)
    assert meta["state"] == "failure" and meta["attempts"] == 1, "a result that cannot be stored is not retried"
    assert meta["error"]["type"] == "SerializationError" and "JSON" in meta["error"]["message"]


def test_metadata_that_is_not_json_fails_the_attempt_instead_of_running_it_again(tmp_path: Path) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path}/u.db", max_workers=0) as tm:
        task_id = tm.queue_task("tests.helpers.tasks:sets_unstorable_metadata", max_retries=3)
        tm.run_until_idle()
        meta = tm.get_task_metadata(task_id)
    assert meta["state"] == "failure" and meta["attempts"] == 1
    assert meta["error"]["type"] == "SerializationError" and "ctx.metadata" in meta["error"]["message"]


def test_a_result_nested_too_deep_to_show_fails_the_task_and_the_lists_keep_working(tmp_path: Path) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path}/u.db", max_workers=0) as tm:
        deep = tm.queue_task("tests.helpers.tasks:nested", args=(250,))
        deep_tuples = tm.queue_task("tests.helpers.tasks:nested", args=(250, "tuple"))  # stored as arrays too
        fine = tm.queue_task("tests.helpers.tasks:nested", args=(150,))
        tm.run_until_idle()
        for task_id in (deep, deep_tuples):
            meta = tm.get_task_metadata(task_id)
            assert meta["state"] == "failure" and "more than 200 deep" in meta["error"]["message"]
        assert tm.get_task_metadata(fine)["state"] == "success"


def test_a_shell_command_printing_a_nul_character_is_logged_with_its_escape(tmp_path: Path) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path}/u.db", max_workers=0) as tm:
        task_id = tm.queue_task(command="printf 'a\\000b\\n'")
        tm.run_until_idle()
        assert [line["message"] for line in tm.get_task_logs(task_id)] == ["a\\x00b"]  # PostgreSQL takes no NUL


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_log_lines_holding_undecodable_bytes_are_stored_readable(tmp_path: Path, isolation: str) -> None:
    with TaskManager(store=f"sqlite:///{tmp_path}/u.db", max_workers=1) as tm:
        task_id = tm.queue_task("tests.helpers.tasks:logs_undecodable_bytes", isolation=isolation)
        assert tm.get_result(task_id, timeout=10) == "ok"
        assert [line["message"] for line in tm.get_task_logs(task_id)] == ["read caf\\udce9"]


@pytest.mark.parametrize(
    ("options", "what"),
    [({"args": (object(), 1)}, "arguments"), ({"kwargs": {"b": {1, 2}}, "args": (1,)}, "keyword arguments"),
     ({"args": (1, 2), "metadata": {"owner": object()}}, "metadata")],
)  # fmt: skip
def test_arguments_that_are_not_json_are_refused_at_queue_time(tmp_path: Path, options: dict, what: str) -> None:
    from unified.errors import SerializationError

    with TaskManager(store=f"sqlite:///{tmp_path}/u.db", max_workers=0) as tm:
        with pytest.raises(SerializationError, match=f"the {what} of task .* not JSON-serialisable"):
            tm.queue_task("tests.helpers.tasks:add", **options)
        assert tm.list_tasks() == []


CHILD = textwrap.dedent(
    """
    import sys, time
    from unified.task_manager import TaskManager
    tm = TaskManager(store=sys.argv[1], max_workers=1, lease_seconds=1.0, heartbeat_seconds=0.2)
    tm.queue_task("tests.helpers.tasks:hang_first_time", args=(sys.argv[2],), task_id="victim", max_retries=1)
    # one retry: the dying worker may hold it too (its dispatcher may claim ahead while the victim hangs)
    tm.queue_task("tests.helpers.tasks:add", args=(20, 22), task_id="waiting", max_retries=1)
    print("queued", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize("round_", range(3))
def test_work_survives_kill_dash_9(tmp_path: Path, round_: int) -> None:
    url = f"sqlite:///{tmp_path}/unified.db"
    marker = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(marker)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "queued"
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the child never started the task"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()

    with TaskManager(store=url, max_workers=2, lease_seconds=1.0, heartbeat_seconds=0.2) as tm:
        assert tm.get_result("victim", timeout=20) == "recovered"
        assert tm.get_result("waiting", timeout=20) == 42
        history = tm.get_task_metadata("victim")["history"]
    assert [h["state"] for h in history] == ["lost", "success"]
    assert history[0]["worker"] != history[1]["worker"]
