"""Worker processes sharing one database: every task runs exactly once, queue limits hold across processes, a
manager with no workers of its own only queues, and SIGTERM hands back what a worker holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.workers import FAST_LEASES, ROOT, Fleet, wait_until
from unified.task import Task
from unified.task_manager import TaskManager

pytestmark = pytest.mark.postgres


@pytest.fixture
def fleet(pg_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """Worker processes on the test's schema (none started yet), all stopped after the test."""
    workers = Fleet(pg_url, tmp_path, concurrency=4, poll_seconds=30.0, **FAST_LEASES)
    yield workers
    workers.stop()


def test_four_processes_run_two_thousand_tasks_exactly_once(pg_url: str, fleet: Fleet) -> None:
    fleet.start(4)
    fleet.wait_ready()  # all four listening: the work is queued for a fleet, not for whichever starts first
    with TaskManager(store=pg_url, max_workers=0) as tm:  # only queues: the processes do the work
        ids = tm.engine.submit([Task(func="tests.helpers.tasks:add", args=(i, 1)) for i in range(2000)])
        assert tm.get_result(ids[-1], timeout=120) == 2000, "wait/get_result poll the store"
        wait_until(lambda: tm.store.count_tasks_by_state() == {"success": 2000}, 120, "every task succeeding")
        records = tm.store.get_tasks(ids)
        attempts = {task_id: tm.store.list_attempts(task_id) for task_id in ids}
    assert sorted(r.result for r in records) == list(range(1, 2001))
    assert {r.attempts for r in records} == {1}, "claimed once each"
    assert {len(a) for a in attempts.values()} == {1} and {a[0].state for a in attempts.values()} == {"success"}
    workers = Counter(a[0].worker for a in attempts.values())
    assert len(workers) == 4, f"every process took a share: {workers}"
    assert fleet.stop() == [0, 0, 0, 0], fleet.output()


def test_a_queue_limit_holds_across_processes(pg_url: str, fleet: Fleet) -> None:
    with TaskManager(store=pg_url, max_workers=0) as tm:
        tm.set_queue_limit("gpu", 2)
        gpu = [tm.queue_task("tests.helpers.tasks:timed_sleep", args=(0.2,), queue="gpu") for _ in range(10)]
        other = [tm.queue_task("tests.helpers.tasks:timed_sleep", args=(0.2,)) for _ in range(6)]
        fleet.start(3)
        for task_id in gpu + other:
            tm.wait(task_id, timeout=30)
        # when each function actually ran, as it measured it: an attempt's started_at is the claimer's clock read
        # before it waited for the queue's lock, so attempt records can seem to overlap where the runs did not
        spans = [tuple(tm.store.get_task(t).result) for t in gpu]
        others = [tuple(tm.store.get_task(t).result) for t in other]
    assert len(spans) == 10 and all(end is not None for _, end in spans)
    assert max_overlap(spans) == 2, "never more than two gpu tasks at once, yet two did run together"
    assert max_overlap(others) > 2, "unlimited queues are not held back"


def max_overlap(spans: list[tuple[float, float | None]], slack: float = 0.01) -> int:
    """The most intervals open at one instant, each trimmed by ``slack`` seconds at both ends: an attempt's times are
    read from each worker's clock just before its transaction, so neighbours may seem to touch for a millisecond."""
    edges = sorted([(start + slack, 1) for start, _ in spans] + [((end or 0.0) - slack, -1) for _, end in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_workers_serve_only_their_queues(pg_url: str, fleet: Fleet) -> None:
    with TaskManager(store=pg_url, max_workers=0) as tm:
        reports = tm.queue_task("tests.helpers.tasks:add", args=(1, 2), queue="reports")
        plain = tm.queue_task("tests.helpers.tasks:add", args=(3, 4))
        fleet.start(1, queues=["reports"])
        assert tm.get_result(reports, timeout=20) == 3
        time.sleep(0.3)
        assert tm.get_task_metadata(plain)["state"] == "queued", "the default queue has no worker yet"
        fleet.start(1)
        assert tm.get_result(plain, timeout=20) == 7


def test_new_work_wakes_idle_workers_at_once(pg_url: str, fleet: Fleet) -> None:
    """Workers poll only every 30 s here: LISTEN/NOTIFY is what gets these tasks started."""
    with TaskManager(store=pg_url, max_workers=0) as tm:
        fleet.start(2)
        warm = tm.queue_task("tests.helpers.tasks:add", args=(0, 0))
        tm.wait(warm, timeout=20)  # both workers are up and idle now
        time.sleep(0.3)
        for n in range(5):
            started = time.monotonic()
            assert tm.get_result(tm.queue_task("tests.helpers.tasks:add", args=(n, n)), timeout=5) == 2 * n
            assert time.monotonic() - started < 2.0


def test_sigterm_hands_back_running_tasks(pg_url: str, fleet: Fleet) -> None:
    with TaskManager(store=pg_url, max_workers=0) as tm:
        slow = tm.queue_task("tests.helpers.tasks:sleep_for", args=(30,))
        fleet.start(1, grace_seconds=0.2)
        wait_until(lambda: tm.get_task_metadata(slow)["state"] == "running", 20, "the slow task starting")
        assert fleet.stop() == [0]
        meta = tm.get_task_metadata(slow)
    assert meta["state"] == "queued", "back in the queue at once, not after a lease expiry"
    assert [h["state"] for h in meta["history"]] == ["handed_back"]


def test_several_worker_processes_share_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/unified.db"
    fleet = Fleet(url, tmp_path, concurrency=2, poll_seconds=0.1, **FAST_LEASES)
    try:
        with TaskManager(store=url, max_workers=0) as tm:
            ids = [tm.queue_task("tests.helpers.tasks:sleep_for", args=(0.05,)) for i in range(40)]
            fleet.start(2)
            assert [tm.get_result(task_id, timeout=30) for task_id in ids] == ["slept"] * 40
            workers = {tm.store.list_attempts(task_id)[0].worker for task_id in ids}
        assert len(workers) == 2
    finally:
        assert fleet.stop() == [0, 0], fleet.output()


def test_the_cli_worker_and_scheduler_commands_run_until_sigterm(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "unified.ui.ui"]
    log = open(tmp_path / "cli.log", "wb")  # noqa: SIM115 - the children write to it
    worker = subprocess.Popen([*cli, "worker", "--db", pg_url, "--queues", "cli,other", "--concurrency", "2",
                               "--isolation", "process", "--lease-seconds", "2", "--heartbeat-seconds", "0.5"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    scheduler = subprocess.Popen([*cli, "scheduler", "--db", pg_url], cwd=ROOT, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    log.close()
    try:
        with TaskManager(store=pg_url, max_workers=0) as tm:
            task_id = tm.queue_task("tests.helpers.tasks:write_pid_and_sleep", args=(str(tmp_path / "pid"), 0),
                                    queue="cli")  # fmt: skip
            tm.wait(task_id, timeout=30)
            assert tm.get_task_metadata(task_id)["state"] == "success"
        assert int((tmp_path / "pid").read_text()) != worker.pid, "--isolation process ran it in a child process"
    finally:
        for proc in (worker, scheduler):
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(15) for proc in (worker, scheduler)]
    assert codes == [0, 0], (tmp_path / "cli.log").read_text()
    assert "received SIGTERM" in (tmp_path / "cli.log").read_text()


def test_the_cli_worker_refuses_bad_options(pg_url: str) -> None:
    cli = [sys.executable, "-m", "unified.ui.ui", "worker", "--db", pg_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = subprocess.run([*cli, "--isolation", "fork"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "isolation must be one of thread, process" in bad.stderr
    slow = subprocess.run([*cli, "--lease-seconds", "1", "--heartbeat-seconds", "2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert slow.returncode == 2 and "heartbeat_seconds must be shorter than lease_seconds" in slow.stderr
