"""Concurrent claimers (threads, and separate processes for the durable stores) take every task exactly once."""

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

from unified.store.base import Store, TaskRecord

TASKS = 500
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


def fill(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    store.insert_tasks([make_task(f"t{i:03}", priority=i % 3) for i in range(TASKS)])


def assert_each_claimed_once(claimed: list[str]) -> None:
    repeats = [task_id for task_id, n in Counter(claimed).items() if n > 1]
    assert repeats == []
    assert sorted(claimed) == [f"t{i:03}" for i in range(TASKS)]


def test_threads_claim_every_task_exactly_once(store: Store, make_task: Callable[..., TaskRecord]) -> None:
    fill(store, make_task)
    results: dict[int, list[str]] = {}
    start = threading.Barrier(4, timeout=WAIT_SECONDS)

    def claim(n: int) -> None:
        taken: list[str] = []
        start.wait()
        while batch := store.claim_tasks(f"w{n}", 1000.0, 60.0, limit=1 + n % 3):
            taken += [task.id for task in batch]
        results[n] = taken

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert not any(thread.is_alive() for thread in threads)
    assert_each_claimed_once([task_id for taken in results.values() for task_id in taken])
    assert store.count_tasks_by_state() == {"running": TASKS}


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the claimer process did not answer in time"
    return proc.stdout.readline()


def test_processes_claim_every_task_exactly_once(
    durable_url: str, open_store: Callable[[str], Store], make_task: Callable[..., TaskRecord]
) -> None:
    store = open_store(durable_url)
    try:
        fill(store, make_task)
    finally:
        store.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, durable_url, f"p{n}", str(n + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for n in range(2)
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
    assert [proc.returncode for proc in procs] == [0, 0]
    taken = [json.loads(output) for output in outputs]
    assert_each_claimed_once(taken[0] + taken[1])


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
