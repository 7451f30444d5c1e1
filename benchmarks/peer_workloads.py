"""The workloads of docs/performance.md on other orchestrators, run by ``benchmarks/peers.py`` in a scratch venv
that has Dask, huey and Celery (they are not dependencies of unified). Not imported by unified or its tests.

    <peers-venv>/bin/python -c "from benchmarks.peer_workloads import main; main()" dask W1 10000
    # prints {"seconds": ...}; imported, not run as __main__, so workers find the tasks under the same names

Dask runs in this process on its threaded scheduler with 2 threads (memory only, no persistence, no retries).
huey (SQLite storage) and Celery (Redis broker and results) run in 2 worker processes started before the clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery
from huey import SqliteHuey

ROOT = Path(__file__).resolve().parents[1]
HUEY_DB = os.environ.get("PEERS_HUEY_DB", "/tmp/unified-peers-huey.db")
BROKER = os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/15")
WARM_UP_SECONDS = 4.0


def noop() -> None:
    """A task that does nothing."""


def add(*values: int) -> int:
    """The sum of the upstream results, 1 with none (W2's step and W3's node)."""
    return sum(values) + 1 if values else 1


# --- Dask ---------------------------------------------------------------------------------------------------------
def dask_run(workload: str, n: int) -> float:
    """W1 (n no-op tasks), W2 (a chain of n), W3 (n // 100 layers of 100) on dask's threaded scheduler."""
    from dask.threaded import get

    if workload == "W1":
        graph: dict = {f"t{i}": (noop,) for i in range(n)}
    elif workload == "W2":
        graph = {"t0": (add,), **{f"t{i}": (add, f"t{i - 1}") for i in range(1, n)}}
    else:
        graph = {f"0-{i}": (add,) for i in range(100)}
        for k in range(1, n // 100):
            for i in range(100):
                deps = sorted({f"{k - 1}-{i}", f"{k - 1}-{(7 * i + 3) % 100}"})
                graph[f"{k}-{i}"] = (add, *deps)
    start = time.perf_counter()
    get(graph, list(graph), num_workers=2)
    return time.perf_counter() - start


# --- huey ---------------------------------------------------------------------------------------------------------
huey = SqliteHuey("peers", filename=HUEY_DB)


@huey.task()
def huey_noop() -> int:
    """A huey no-op task (it returns 1: huey stores no None results, and the caller waits for each result)."""
    return 1


@huey.task(retries=2, retry_delay=0, context=True)
def huey_fails_twice(task: object = None) -> int:
    """Raise on attempts 1 and 2 (huey counts retries left down from 2)."""
    if task.retries > 0:  # type: ignore[attr-defined]
        raise RuntimeError("fails")
    return 3


def huey_run(workload: str, n: int) -> float:
    """W5 (n no-op tasks) and W4 (n tasks failing twice) through 2 consumer processes.

    huey stores the error of each failed attempt as a result: W4 reads results until the successful one arrives.
    (W2 as a huey pipeline of 1,000 steps exceeds Python's recursion limit, so huey has no W2 here.)
    """
    from huey.exceptions import TaskException

    fn = huey_noop if workload == "W5" else huey_fails_twice
    start = time.perf_counter()
    results = [fn() for _ in range(n)]
    for result in results:
        while True:
            try:
                result.get(blocking=True, timeout=600, backoff=1.0, max_delay=0.01)
                break
            except TaskException:
                result.reset()
    return time.perf_counter() - start


# --- Celery -------------------------------------------------------------------------------------------------------
app = Celery("peers", broker=BROKER, backend=BROKER)
app.conf.worker_hijack_root_logger = False


@app.task
def celery_noop() -> None:
    """A Celery no-op task."""


@app.task(bind=True, max_retries=2)
def celery_fails_twice(self: object) -> int:
    """Raise on attempts 1 and 2, retrying at once."""
    if self.request.retries < 2:  # type: ignore[attr-defined]
        raise self.retry(countdown=0, exc=RuntimeError("fails"))  # type: ignore[attr-defined]
    return 3


def celery_run(workload: str, n: int) -> float:
    """W5 (n no-op tasks) and W4 (n tasks failing twice) through 2 prefork worker processes."""
    fn = celery_noop if workload == "W5" else celery_fails_twice
    start = time.perf_counter()
    results = [fn.delay() for _ in range(n)]
    for result in results:
        result.get(timeout=600, interval=0.005)
    return time.perf_counter() - start


def workers(system: str) -> subprocess.Popen[bytes]:
    """Start the 2 worker processes of huey or Celery on this module."""
    bindir = Path(sys.executable).parent
    if system == "huey":
        cmd = [str(bindir / "huey_consumer"), "benchmarks.peer_workloads.huey", "-w", "2", "-k", "process",
               "-d", "0.01", "-m", "0.05", "-q"]  # fmt: skip
    else:
        cmd = [str(bindir / "celery"), "-A", "benchmarks.peer_workloads", "worker", "-c", "2", "-P", "prefork",
               "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEERS_SYSTEM": system}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def main() -> None:
    """``peer_workloads.py SYSTEM WORKLOAD N``: run once, print the seconds as JSON."""
    system, workload, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if system == "dask":
        print(json.dumps({"seconds": dask_run(workload, n)}))
        return
    if system == "huey":
        huey.storage.flush_all()
    else:
        app.control.purge()
    proc = workers(system)
    try:
        time.sleep(WARM_UP_SECONDS)
        seconds = (huey_run if system == "huey" else celery_run)(workload, n)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(json.dumps({"seconds": seconds}))
