"""Two schedulers on one PostgreSQL database for a simulated day of ``*/5`` fires: 288 runs, none twice; and the
scheduler process entry (``run_scheduler``) fires on its own and stops on request."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.contract.test_store_concurrency import run_threads
from tests.helpers.workers import wait_until
from unified.engine import Engine
from unified.scheduler import Scheduler, When
from unified.service import run_scheduler
from unified.store.records import WorkflowRecord
from unified.store.sql import SqlStore
from unified.task import Task
from unified.utils import FakeClock

pytestmark = pytest.mark.postgres

DAY_OF_FIVE_MINUTES = 288


def add_workflow(engine: Engine) -> str:
    spec = engine.functions.register(Task(task_id="a", func="tests.helpers.tasks:add", args=(1, 1)))
    engine.store.put_workflow(WorkflowRecord("nightly", "nightly", tasks=[spec]))
    return "nightly"


def test_two_schedulers_fire_a_day_of_five_minute_schedules_once_each(pg_url: str) -> None:
    clock = FakeClock()
    stores = [SqlStore(pg_url), SqlStore(pg_url)]
    schedulers = [Scheduler(Engine(store, clock)) for store in stores]
    try:
        workflow_id = add_workflow(schedulers[0].engine)
        sid = schedulers[0].add_workflow(workflow_id, When(cron="*/5 * * * *", max_active_runs=1000))
        fired: list[str] = []
        for _ in range(DAY_OF_FIVE_MINUTES):
            clock.advance(300)
            ticks = run_threads(lambda n: schedulers[n].run_once(), count=2)  # racing for the same fire
            fired += [f.run_id for outcome in ticks.values() for f in outcome if f.state == "started"]  # type: ignore[attr-defined]
        runs = stores[0].list_runs(schedule_id=sid, limit=1000)
        fires = stores[0].list_fires(sid, limit=1000)
    finally:
        for store in stores:
            store.close()
    assert len(fired) == len(set(fired)) == DAY_OF_FIVE_MINUTES
    assert len(runs) == DAY_OF_FIVE_MINUTES and {r.run_id for r in runs} == set(fired)
    assert len(fires) == DAY_OF_FIVE_MINUTES and Counter(f.state for f in fires) == {"started": DAY_OF_FIVE_MINUTES}
    assert fires[0].fire_time - fires[-1].fire_time == (DAY_OF_FIVE_MINUTES - 1) * 300


def test_run_scheduler_fires_due_schedules_until_stopped(pg_url: str) -> None:
    store = SqlStore(pg_url)
    try:
        engine = Engine(store)
        sid = Scheduler(engine).add_workflow(add_workflow(engine), When(interval_seconds=0.2, max_active_runs=100))
        stop = threading.Event()
        thread = threading.Thread(target=run_scheduler, args=(pg_url,), kwargs={"stop": stop, "max_wait_seconds": 0.1})
        thread.start()
        try:
            wait_until(lambda: len(store.list_runs(schedule_id=sid)) >= 3, 20, "three fires")
        finally:
            stop.set()
            thread.join(10)
        assert not thread.is_alive()
    finally:
        store.close()


def test_two_schedulers_start_each_queued_backfill_time_once_within_max_active_runs(pg_url: str) -> None:
    clock = FakeClock()
    clock.advance(7 * 86400)
    stores = [SqlStore(pg_url), SqlStore(pg_url)]
    schedulers = [Scheduler(Engine(store, clock)) for store in stores]
    try:
        workflow_id = add_workflow(schedulers[0].engine)
        sid = schedulers[0].add_workflow(workflow_id, When(cron="@daily", max_active_runs=1))
        fired = schedulers[0].backfill(sid, "2026-01-01T00:00:00Z", "2026-01-06T00:00:00Z")
        assert [f.state for f in fired] == ["started"] + ["queued"] * 5
        started = [fired[0]]
        for _ in range(6):
            for run in stores[0].list_runs(schedule_id=sid, state="running"):
                schedulers[0].engine.cancel_run(run.run_id)
            ticks = run_threads(lambda n: schedulers[n].run_once(), count=2)  # racing for the same queued time
            started += [f for outcome in ticks.values() for f in outcome]  # type: ignore[attr-defined]
            assert len(stores[0].list_runs(schedule_id=sid, state="running")) <= 1
        fires = stores[0].list_fires(sid, limit=100)
    finally:
        for store in stores:
            store.close()
    assert sorted(f.fire_time for f in started) == sorted(f.fire_time for f in fired), "each queued time once"
    assert Counter(f.state for f in fires) == {"started": 6}
