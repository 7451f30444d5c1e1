"""Worker processes on one SQLite file take up work another process queues within moments, not at their poll."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.workers import Fleet, wait_until
from unified.engine import Engine
from unified.store.sql import SqlStore
from unified.task import Task

ROUNDS = 3


def test_worker_processes_run_work_another_process_queued_long_before_their_poll(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    with SqlStore(url) as store:  # the file and its schema exist before the workers open it
        fleet = Fleet(url, tmp_path, concurrency=2, poll_seconds=60.0)
        fleet.start(2)
        try:
            fleet.wait_ready()
            engine = Engine(store)
            for round_ in range(ROUNDS):  # each round finds the workers idle, waiting for their 60 s poll
                tasks = [Task(task_id=f"r{round_}-{n}", func="tests.helpers.tasks:add", args=(n, 1)) for n in range(5)]
                ids = engine.submit(tasks)
                wait_until(lambda: all(r.state == "success" for r in store.get_tasks(ids)), 10,  # noqa: B023 - waited for here
                           f"round {round_} to run (not at the workers' poll)")  # fmt: skip
        finally:
            assert all(code == 0 for code in fleet.stop()), "the workers stopped cleanly"
