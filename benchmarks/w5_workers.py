"""W5, the durable queue: n no-op tasks queued by this process (``TaskManager.queue_task``, no local workers) and run
by ``unified worker`` processes on a SQLite file or on PostgreSQL.

    .venv/bin/python benchmarks/w5_workers.py --url sqlite:///tmp/w5.db [--tasks 10000] [--processes 2]

The worker processes are started first and given time to import and open the store; the clock then runs from the
first ``queue_task`` to the moment the last task is seen in ``success``, so process start-up is excluded.
Prints one JSON line: seconds, tasks, and the peak RSS of this (queueing) process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.postgres_workers import fresh_schema, stop_workers, wait_for_successes  # noqa: E402
from benchmarks.run_all import peak_rss_mb  # noqa: E402
from unified.task_manager import TaskManager  # noqa: E402

WARM_UP_SECONDS = 3.0  # long enough for a worker process to import unified and open the store on this VM


def workers(url: str, processes: int) -> list[subprocess.Popen[bytes]]:
    """Start ``processes`` ``unified worker`` processes on ``url`` (their default options, warnings only)."""
    exe = Path(sys.executable).with_name("unified")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [str(exe), "worker", "--db", url, "--log-level", "warning"]
    return [subprocess.Popen(cmd, cwd=ROOT, env=env) for _ in range(processes)]


def measure(url: str, tasks: int, processes: int, batch: int = 1) -> dict[str, float]:
    """Seconds from the first queue call until every task succeeded, with ``processes`` workers running them.

    ``batch`` > 1 queues that many tasks per ``TaskManager.batch()`` (one commit each).
    A PostgreSQL URL gets a fresh schema, dropped afterwards; a SQLite URL should name a new file.
    """
    if url.startswith("postgres"):
        with fresh_schema(url) as schema_url:
            return _measure(schema_url, tasks, processes, batch)
    return _measure(url, tasks, processes, batch)


def _measure(url: str, tasks: int, processes: int, batch: int) -> dict[str, float]:
    tm = TaskManager(store=url, max_workers=0, run_scheduler=False)
    procs = workers(url, processes)
    try:
        time.sleep(WARM_UP_SECONDS)
        start = time.perf_counter()
        if batch == 1:  # W5 as the issue defines it: each queue_task on its own
            for _ in range(tasks):
                tm.queue_task("benchmarks.workloads:noop")
        else:
            for first in range(0, tasks, batch):
                with tm.batch():
                    for _ in range(min(batch, tasks - first)):
                        tm.queue_task("benchmarks.workloads:noop")
        wait_for_successes(tm.store, tasks, procs)
        seconds = time.perf_counter() - start
    finally:
        stop_workers(procs)
        tm.shutdown()
    return {"seconds": seconds, "tasks": tasks, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    """Parse the options, run once and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a fresh store: sqlite:///file.db or a PostgreSQL URL")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="tasks queued per TaskManager.batch() (one commit)")
    args = parser.parse_args()
    print(json.dumps(measure(args.url, args.tasks, args.processes, args.batch)))


if __name__ == "__main__":
    main()
