"""Cancellation: queued tasks never run, running thread tasks see ctx.cancelled, processes and shells die."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from unified.engine import Engine
from unified.errors import ConflictError
from unified.store.memory import MemoryStore
from unified.task import CancelFlag, Task, TaskContext
from unified.task_manager import TaskManager
from unified.worker import WorkerPool
from unified.workflow.workflow import Workflow, WorkflowManager


def test_a_queued_task_never_runs(drained: TaskManager) -> None:
    ran = []
    task_id = drained.queue_task(lambda: ran.append(1))
    assert drained.cancel_task(task_id) is True
    drained.run_until_idle()
    assert ran == [] and drained.get_task_metadata(task_id)["state"] == "canceled"


def test_a_pending_task_never_runs_and_its_dependants_are_skipped(drained: TaskManager) -> None:
    drained.queue_task(lambda: 1, task_id="a")
    drained.queue_task(lambda: 1, task_id="b", dependencies=["a"])
    drained.queue_task(lambda: 1, task_id="c", dependencies=["b"])
    assert drained.cancel_task("b")
    drained.run_until_idle()
    assert [drained.store.get_task(t).state for t in "abc"] == ["success", "canceled", "skipped"]


def test_cancelling_a_finished_task_returns_false_and_changes_nothing(drained: TaskManager) -> None:
    task_id = drained.queue_task(lambda: "x")
    drained.run_until_idle()
    before = drained.get_task_metadata(task_id)
    assert drained.cancel_task(task_id) is False
    assert drained.get_task_metadata(task_id) == before


def test_a_running_thread_task_sees_ctx_cancelled(manager: TaskManager) -> None:
    started, stopped = threading.Event(), threading.Event()

    def cooperative(ctx: TaskContext) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        stopped.set()
        return "stopped"

    task_id = manager.queue_task(cooperative)
    assert started.wait(5)
    assert manager.cancel_task(task_id)
    assert stopped.wait(5)
    meta = manager.wait(task_id, timeout=5)
    assert meta["state"] == "canceled"
    assert manager.cancel_task(task_id) is False


def cancel_and_time_the_kill(manager: TaskManager, task_id: str, pid_file: Path) -> float:
    """Wait (bounded) for the task's process to write its pid, cancel the task, and return the seconds until that
    process is gone (failing if it outlives 2 s)."""
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    started = time.monotonic()
    assert manager.cancel_task(task_id)
    while _alive(pid) and time.monotonic() - started < 2:
        time.sleep(0.02)
    assert not _alive(pid), "the process survived its cancellation"
    return time.monotonic() - started


def test_a_process_task_is_killed_within_a_second(manager: TaskManager, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task_id = manager.queue_task(
        "tests.helpers.tasks:write_pid_and_sleep", args=(str(pid_file), 30), isolation="process"
    )
    assert cancel_and_time_the_kill(manager, task_id, pid_file) < 1.5
    assert manager.wait(task_id, timeout=5)["state"] == "canceled"


def test_a_shell_task_is_killed_within_a_second(manager: TaskManager, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task_id = manager.queue_task(command=f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && sleep 30")
    assert cancel_and_time_the_kill(manager, task_id, pid_file) < 1.5
    assert manager.wait(task_id, timeout=5)["state"] == "canceled"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child that is not yet reaped is a zombie: dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # it ended between the two looks
        return False


def test_cancel_run_cancels_every_unfinished_task() -> None:
    gate = threading.Event()
    started = threading.Event()

    def slow(ctx: TaskContext) -> None:
        started.set()
        while not ctx.cancelled and not gate.wait(0.01):
            pass

    with WorkflowManager() as wm:
        workflow_id = wm.register(
            Workflow(
                "c", tasks=[Task(task_id="slow", func=slow), Task(task_id="after", func=print, dependencies=["slow"])]
            )
        )
        run_id = wm.start_workflow(workflow_id)
        assert started.wait(5)
        assert wm.cancel_run(run_id) == 2
        run = wm.wait_run(run_id, timeout=5)
        with pytest.raises(ConflictError, match="already ended canceled; only running runs can be canceled"):
            wm.cancel_run(run_id)
    assert run.state == "canceled"
    assert run.tasks["slow"]["state"] == "canceled"
    assert run.tasks["after"]["state"] == "canceled"


def test_a_cancel_flag_reads_and_waits_like_an_event() -> None:
    flag = CancelFlag()
    assert not flag.is_set() and not flag.wait(0), "a wait times out while unset"
    flag.set()
    assert flag.is_set() and flag.wait(0) and flag.wait(None)
    flag.clear()
    assert not flag.is_set() and not flag.wait(0)


def test_a_cancel_flag_wakes_a_thread_that_waits_on_it() -> None:
    flag = CancelFlag()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(flag.wait(10)))
    waiter.start()
    deadline = time.monotonic() + 10
    while flag._event is None and time.monotonic() < deadline:  # until the waiter made the event it sleeps on
        time.sleep(0.001)
    flag.set()
    waiter.join(10)
    assert woke == [True]


def test_a_flag_set_before_anyone_waits_makes_no_event() -> None:
    flag = CancelFlag()
    flag.set()
    assert flag.wait(0) and flag.wait(None) and flag._event is None, "a set flag is read without an event"


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_canceling_a_task_whose_code_ignores_it_frees_its_runner_and_ends_its_attempt_at_once(
    store: str, tmp_path: Path
) -> None:
    gate, started = threading.Event(), threading.Event()

    def stubborn() -> str:  # never looks at ctx.cancelled: its runner thread cannot be taken back
        started.set()
        gate.wait(10)
        return "late"

    url = f"sqlite:///{tmp_path / 'cancel.db'}" if store == "sqlite" else "memory://"
    with TaskManager(store=url, max_workers=1) as tm:
        try:
            stuck = tm.queue_task(stubborn)
            assert started.wait(5)
            first_runner = tm.pool._runners[0]
            assert tm.cancel_task(stuck)
            meta = tm.get_task_metadata(stuck)
            assert meta["state"] == "canceled"
            assert [(a["state"], a["finished_at"] is not None) for a in meta["history"]] == [("canceled", True)]
            assert tm.get_result(tm.queue_task(lambda: "next"), timeout=5) == "next"  # a new runner took the place
            assert first_runner.is_alive() and first_runner not in tm.pool._runners
        finally:
            gate.set()
        first_runner.join(5)
        assert not first_runner.is_alive(), "the replaced runner ends once its code returns"
        assert len(tm.pool._runners) == 1 and tm.pool._busy == 0
        assert tm.get_task_metadata(stuck)["history"][0]["state"] == "canceled"  # the late return changes nothing


def test_a_stopping_pool_kills_the_child_processes_it_hands_back(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    manager = TaskManager(store=f"sqlite:///{tmp_path / 'stop.db'}", max_workers=1)
    sleeper = "tests.helpers.tasks:write_pid_and_sleep"
    task_id = manager.queue_task(sleeper, args=(str(pid_file), 30), isolation="process")
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    manager.shutdown(wait=False)  # as SIGTERM past its grace: the attempt is handed back to the queue
    assert not _alive(pid), "the child outlived its worker, to run beside the next attempt"
    with TaskManager(store=f"sqlite:///{tmp_path / 'stop.db'}", max_workers=0) as after:
        assert after.get_task_metadata(task_id)["state"] == "queued"


KILLED_HARD_TASKS = {
    "a process-isolation child": "'tests.helpers.tasks:write_pid_and_sleep', args=(PID, 30), isolation='process'",
    "a process started by that child": (
        "'tests.helpers.tasks:start_sleeper_and_sleep', args=(PID, 30), isolation='process'"
    ),
    "a process started by a shell command": "command=f'sleep 30 & echo $! > {PID}.tmp && mv {PID}.tmp {PID}; sleep 30'",
}


@pytest.mark.parametrize("spec", KILLED_HARD_TASKS.values(), ids=KILLED_HARD_TASKS.keys())
def test_the_processes_of_an_attempt_end_with_their_worker_killed_hard(tmp_path: Path, spec: str) -> None:
    pid_file = tmp_path / "pid"
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import threading
        from unified.task_manager import TaskManager
        PID = {str(pid_file)!r}
        tm = TaskManager(max_workers=1, allow_shell=True)
        tm.queue_task({spec})
        threading.Event().wait(30)
    """)], cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = int(pid_file.read_text())
        worker.kill()  # kill -9: no hand-back, no supervisor left
        worker.wait(5)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid), "the process outlived a worker killed with kill -9"
    finally:
        worker.kill()


def test_a_task_claimed_by_a_replaced_runner_goes_to_a_runner_that_remains() -> None:
    engine = Engine(MemoryStore())
    (task_id,) = engine.submit([Task(task_id="after", func=lambda: "ran")])
    claimed = engine.claim("w")  # as the report of a canceled task's late return claims the next one
    pool = WorkerPool(engine, max_workers=1, poll_seconds=30.0, worker_id="w")
    pool.start()
    try:
        pool._retired.add(threading.get_ident())  # this thread stands in for a runner replaced meanwhile
        pool._accept(claimed, by_runner=True)
        deadline = time.monotonic() + 5
        while engine.store.get_task(task_id).state != "success" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.store.get_task(task_id).state == "success", "the claimed task waited in the pool's buffer"
    finally:
        pool.stop()


def test_the_late_report_of_a_canceled_attempt_leaves_the_next_attempt_cancelable() -> None:
    engine = Engine(MemoryStore())
    engine.submit([Task(task_id="t", func=lambda: "ran")])
    (first,) = engine.claim("w")
    assert engine.cancel_task("t")
    engine.retry_task("t")
    assert [r.attempts for r in engine.claim("w")] == [2]
    signal = engine.cancel_event("t")
    engine.complete(first, "success", result="late")  # attempt 1's code returned after all: refused
    assert engine.store.get_task("t").state == "running"
    assert engine.cancel_task("t") and signal.is_set(), "attempt 2 was told to stop"


def test_a_task_claimed_again_here_tells_its_earlier_attempt_here_to_stop() -> None:
    store = MemoryStore()
    here, elsewhere = Engine(store), Engine(store)  # a worker, and a CLI or API process on the same database
    here.submit([Task(task_id="t", func=lambda: "ran")])
    assert [r.attempts for r in here.claim("w")] == [1]
    first = here.cancel_event("t")
    assert elsewhere.cancel_task("t")  # heard here only at the next heartbeat
    elsewhere.retry_task("t")
    assert [r.attempts for r in here.claim("w")] == [2]
    assert first.is_set(), "attempt 1 would run on beside attempt 2"
    assert not here.cancel_event("t").is_set()


def test_canceled_and_retried_from_another_process_the_next_attempt_runs_to_its_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    worker = TaskManager(store=url, max_workers=2, lease_seconds=2.0, heartbeat_seconds=0.2, run_scheduler=False)
    other = TaskManager(store=url, max_workers=0, run_scheduler=False)  # a CLI or API process: an engine of its own
    try:
        waits = "tests.helpers.tasks:first_attempt_waits_for_its_cancel"
        task_id = other.queue_task(waits, kwargs={"later_seconds": 1.5}, max_retries=3)  # outlasts a few heartbeats
        deadline = time.monotonic() + 10
        while other.get_task_metadata(task_id)["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert other.cancel_task(task_id)
        other.retry_task(task_id)
        meta = other.wait(task_id, timeout=15)
        # attempt 1 told to stop by the claim of attempt 2; attempt 2 kept its lease (it was dropped with attempt 1's
        # report, and the task was handed back and claimed again, for good)
        assert (meta["state"], meta["result"], meta["attempts"]) == ("success", 2, 2)
    finally:
        worker.shutdown(wait=False)
        other.shutdown()


def test_canceled_from_another_process_a_task_whose_code_ignores_it_frees_its_runner(tmp_path: Path) -> None:
    gate, started = threading.Event(), threading.Event()

    def stubborn() -> str:  # never looks at ctx.cancelled: its runner thread cannot be taken back
        started.set()
        gate.wait(10)
        return "late"

    url = f"sqlite:///{tmp_path / 'other.db'}"
    with TaskManager(store=url, max_workers=1, run_scheduler=False) as tm:
        other = TaskManager(store=url, max_workers=0, run_scheduler=False)  # the CLI or the API: an engine of its own
        try:
            stuck = tm.queue_task(stubborn)
            assert started.wait(5)
            assert other.cancel_task(stuck)
            tm.pool.heartbeat()  # finds the lease gone (its next beat would, within heartbeat_seconds)
            # the slot is free at once, not when the stubborn code returns
            assert tm.get_result(tm.queue_task(lambda: "next"), timeout=5) == "next"
        finally:
            gate.set()
            other.shutdown()
