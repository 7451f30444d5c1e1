"""Crash recovery on PostgreSQL: kill -9 of a worker process mid-task, a task that kills its worker every time (a
poison pill), and a claim whose worker died before its first heartbeat."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.postgres import postgres_schema_url
from tests.helpers.workers import FAST_LEASES, Fleet, wait_until
from unified.engine import Engine
from unified.store.sql import SqlStore
from unified.task import FINISHED_STATES, Task
from unified.worker import WorkerPool

pytestmark = pytest.mark.postgres

ROUNDS = 20
SHORT_TASKS = 4


@pytest.fixture(scope="module")
def shared_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Engine]]:
    """Two worker processes on one schema for every kill round (each round replaces the worker it kills)."""
    with postgres_schema_url() as url:
        store = SqlStore(url)
        fleet = Fleet(url, tmp_path_factory.mktemp("fleet"), concurrency=2, isolation="thread", poll_seconds=30.0,
                      **FAST_LEASES)  # fmt: skip
        fleet.start(2)
        try:
            yield fleet, Engine(store)
        finally:
            fleet.stop()
            store.close()


def finished(engine: Engine, ids: list[str]) -> bool:
    return all(r.state in FINISHED_STATES for r in engine.store.get_tasks(ids))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_dash_9_mid_task_loses_nothing(shared_fleet: tuple[Fleet, Engine], tmp_path: Path, round_: int) -> None:
    fleet, engine = shared_fleet
    marker = tmp_path / "victim-started"
    victim = Task(task_id=f"victim-{round_}", func="tests.helpers.tasks:hang_first_time", args=(str(marker),),
                  max_retries=2)  # fmt: skip
    others = [Task(task_id=f"short-{round_}-{n}", func="tests.helpers.tasks:sleep_for", args=(0.1,), max_retries=2)
              for n in range(SHORT_TASKS)]  # fmt: skip
    ids = engine.submit([victim, *others])
    wait_until(marker.exists, 20, "a worker starting the victim task")
    pid = int(marker.read_text())
    fleet.kill(pid)
    fleet.start(1)  # the fleet keeps its size for the next round
    wait_until(lambda: finished(engine, ids), 20, "every task of the round finishing")

    records = {r.id: r for r in engine.store.get_tasks(ids)}
    assert {r.state for r in records.values()} == {"success"}, "none lost"
    assert records[f"victim-{round_}"].result == "recovered"
    dead = f":{pid}:"
    for task_id in ids:
        history = engine.store.list_attempts(task_id)
        assert [a.state for a in history][-1:] == ["success"] and [a.state for a in history].count("success") == 1
        assert {a.state for a in history[:-1]} <= {"lost"}, "every attempt before the last was recorded lost"
        assert all(a.state == "lost" for a in history if dead in (a.worker or "")), "the dead worker finished nothing"
    victim_history = engine.store.list_attempts(f"victim-{round_}")
    assert victim_history[0].state == "lost" and dead in (victim_history[0].worker or "")
    assert victim_history[0].error and victim_history[0].error["type"] == "LeaseExpired"


def test_a_poison_pill_fails_after_its_retries_instead_of_crash_looping(pg_url: str, tmp_path: Path) -> None:
    """exit_hard os._exit()s the worker process itself (thread isolation): each try costs one worker."""
    engine = Engine(SqlStore(pg_url))
    (pill,) = engine.submit([Task(task_id="pill", func="tests.helpers.tasks:exit_hard", max_retries=2)])
    fleet = Fleet(pg_url, tmp_path, concurrency=1, isolation="thread", **FAST_LEASES)
    deaths = 0
    try:
        deadline = time.monotonic() + 30
        while engine.store.get_task(pill).state not in FINISHED_STATES:  # a supervisor restarting dead workers
            assert time.monotonic() < deadline, fleet.output()
            if not fleet.alive():
                fleet.start(1)
            time.sleep(0.05)
            deaths = sum(p.returncode == 3 for p in fleet.procs)
        record, history = engine.store.get_task(pill), engine.store.list_attempts(pill)
    finally:
        fleet.stop()
        engine.store.close()
    assert record.state == "failure" and record.error["type"] == "LeaseExpired"
    assert [a.state for a in history] == ["lost", "lost", "lost"], "three tries, each recorded lost"
    assert deaths == 3, "the pill took three workers and no more"


def test_a_claim_whose_worker_died_before_its_first_heartbeat_expires(pg_url: str) -> None:
    store = SqlStore(pg_url)
    engine = Engine(store)
    engine.submit([Task(task_id="orphan", func="tests.helpers.tasks:add", args=(1, 2), max_retries=1)])
    (claimed,) = engine.claim("ghost:1:dead", 1, lease_seconds=0.5)  # claimed, then never heard of again
    assert claimed.id == "orphan"
    pool = WorkerPool(engine, max_workers=1, lease_seconds=1.0, heartbeat_seconds=0.1, poll_seconds=0.2)
    pool.start()
    try:
        wait_until(lambda: store.get_task("orphan").state == "success", 10, "the orphan running again")
    finally:
        pool.stop()
    history = store.list_attempts("orphan")
    assert [(a.state, a.worker) for a in history] == [("lost", "ghost:1:dead"), ("success", pool.worker_id)]
    assert store.get_task("orphan").result == 3
    store.close()


def test_the_worker_process_id_is_in_its_attempts(pg_url: str, tmp_path: Path) -> None:
    """What the kill rounds rely on to tell which attempts the dead worker held."""
    engine = Engine(SqlStore(pg_url))
    (task_id,) = engine.submit([Task(func="tests.helpers.tasks:write_pid_and_sleep", args=(str(tmp_path / "pid"), 0))])
    fleet = Fleet(pg_url, tmp_path, concurrency=1, **FAST_LEASES)
    (proc,) = fleet.start(1)
    try:
        wait_until(lambda: engine.store.get_task(task_id).state == "success", 20, "the task finishing")
    finally:
        fleet.stop()
    assert f":{proc.pid}:" in (engine.store.list_attempts(task_id)[0].worker or "")
    assert int((tmp_path / "pid").read_text()) == proc.pid != os.getpid()
    engine.store.close()
