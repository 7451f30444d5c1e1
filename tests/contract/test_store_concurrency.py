"""Concurrent claimers take every task exactly once, and concurrent schedulers record every fire exactly once.

Both run as threads on every store, and as separate processes on the durable ones.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.together import at_once
from unified.auth import ApiKeys
from unified.errors import ConflictError
from unified.store.base import Store
from unified.store.records import FireRecord, TaskRecord, WorkflowRecord
from unified.utils import SystemClock

TASKS = 500
FIRES = 200
WAIT_SECONDS = 60.0
REPO = Path(__file__).resolve().parents[2]
CLAIMER = """
import json, sys
from unified.store.sql import SqlStore
store = SqlStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
taken = []
while batch := store.claim_tasks(sys.argv[2], 1000.0, 60.0, limit=int(sys.argv[3])):
    taken += [task.id for task in batch]
store.close()
print(json.dumps(taken), flush=True)
"""
FIRER = """
import sys
from unified.store.records import FireRecord
from unified.store.sql import SqlStore
store = SqlStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
won = sum(store.insert_fire(FireRecord(f"s{i % 4}", 1000.0 + i, 1000.0)) for i in range(int(sys.argv[2])))
store.close()
print(won, flush=True)
"""


def fill(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task(f"t{i:03}", priority=i % 3) for i in range(TASKS)])


def assert_each_claimed_once(claimed: list[str]) -> None:
    repeats = [task_id for task_id, n in Counter(claimed).items() if n > 1]
    assert repeats == []
    assert sorted(claimed) == [f"t{i:03}" for i in range(TASKS)]


def run_threads(work: Callable[[int], object], count: int = 4) -> dict[int, object]:
    """Run ``work(n)`` for n in range(count) in threads released together; what each returned, by n."""
    results: dict[int, object] = {}
    start = threading.Barrier(count, timeout=WAIT_SECONDS)

    def run(n: int) -> None:
        start.wait()
        results[n] = work(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(results) == list(range(count)), "a thread failed: see its exception above"
    return results


def test_threads_claim_every_task_exactly_once(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    fill(store, make_task)

    def claim(n: int) -> list[str]:
        taken: list[str] = []
        while batch := store.claim_tasks(f"w{n}", 1000.0, 60.0, limit=1 + n % 3):
            taken += [task.id for task in batch]
        return taken

    results: dict[int, Any] = run_threads(claim)
    assert_each_claimed_once([task_id for taken in results.values() for task_id in taken])
    assert store.count_tasks_by_state() == {"running": TASKS}


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the racing process did not answer in time"
    return proc.stdout.readline()


def run_processes(script: str, argvs: list[list[str]]) -> list[str]:
    """Start one process per argv, release them together once all are ready, and return what each printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            assert _readline(proc, WAIT_SECONDS).strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=WAIT_SECONDS)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [0] * len(procs)
    return outputs


def test_processes_claim_every_task_exactly_once(
    durable_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    store = open_store(durable_url)
    try:
        fill(store, make_task)
    finally:
        store.close()
    outputs = run_processes(CLAIMER, [[durable_url, f"p{n}", str(n + 1)] for n in range(2)])
    taken = [json.loads(output) for output in outputs]
    assert_each_claimed_once(taken[0] + taken[1])


def fire(store: Store, i: int) -> bool:
    """Record fire ``i`` of the FIRES fires spread over four schedules."""
    return store.insert_fire(FireRecord(f"s{i % 4}", 1000.0 + i, 1000.0))


def test_threads_record_every_fire_exactly_once(store: Store) -> None:
    won: dict[int, Any] = run_threads(lambda n: sum(fire(store, i) for i in range(FIRES)))
    assert sum(won.values()) == FIRES
    assert sum(len(store.list_fires(f"s{s}", limit=FIRES)) for s in range(4)) == FIRES


def test_processes_record_every_fire_exactly_once(durable_url: str, open_store: Callable[[str], Store]) -> None:
    open_store(durable_url).close()  # migrate first, so the racers only race on fires
    outputs = run_processes(FIRER, [[durable_url, str(FIRES)] for _ in range(2)])
    assert sum(int(output) for output in outputs) == FIRES
    store = open_store(durable_url)
    try:
        assert sum(len(store.list_fires(f"s{s}", limit=FIRES)) for s in range(4)) == FIRES
    finally:
        store.close()


def test_data_survives_reopening(
    durable_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    first = open_store(durable_url)
    try:
        first.insert_tasks([make_task("a", result={"kept": True})])
        first.claim_tasks("w", 1000.0, 30.0)
    finally:
        first.close()
    second = open_store(durable_url)
    try:
        task = second.get_task("a")
        assert (task.state, task.result, task.lease_owner) == ("running", {"kept": True}, "w")
        second.insert_tasks([make_task("b")])
        assert task.seq < second.get_task("b").seq
    finally:
        second.close()


def test_threads_editing_one_draft_lose_no_edit(store: Store) -> None:
    store.put_workflow(WorkflowRecord("w", "edited by threads"))

    def add_tasks(n: int) -> None:
        for i in range(10):
            with store.atomic():
                record = store.lock_workflow("w")
                record.tasks.append({"task_id": f"t{n}-{i}", "dependencies": []})
                store.put_workflow(record)

    run_threads(add_tasks)
    assert sorted(s["task_id"] for s in store.get_workflow("w").tasks) == sorted(
        f"t{n}-{i}" for n in range(4) for i in range(10)
    )


def test_two_admins_revoking_each_other_at_once_leave_one_working(store: Store) -> None:
    keys = ApiKeys(store, SystemClock())
    first, _ = keys.create("first", "admin")
    second, _ = keys.create("second", "admin")
    for _ in range(5):
        revoked, refused = at_once([lambda: keys.revoke(second.key_id), lambda: keys.revoke(first.key_id)])
        assert len(revoked) == 1 and [type(e) for e in refused] == [ConflictError]
        assert [k.name for k in store.list_api_keys() if k.revoked_at is None] in (["first"], ["second"])
        survivor = next(k for k in store.list_api_keys() if k.revoked_at is None)
        store.update_api_key(({first.key_id, second.key_id} - {survivor.key_id}).pop(), revoked_at=None)  # both again
