"""10,000 no-op tasks queued into PostgreSQL and run by 1, 2 and 4 worker processes (``unified.service.run_worker``);
prints tasks/s for each fleet size. Each size gets a fresh schema, dropped afterwards.

    .venv/bin/python benchmarks/postgres_workers.py [--url postgresql://postgres@127.0.0.1:5432/test]
        [--tasks 10000] [--processes 1,2,4] [--concurrency 4]

The clock runs from starting the processes to the last task's success, so it includes process start-up (about half
a second) and every claim, attempt record and report: what a user waiting for a backlog to drain sees.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unified.engine import Engine  # noqa: E402
from unified.store.base import Store  # noqa: E402
from unified.store.sql import SqlStore, driver_url  # noqa: E402
from unified.task import Task  # noqa: E402

WORKER = "import json, sys; from unified.service import run_worker; run_worker(sys.argv[1], **json.loads(sys.argv[2]))"


def schema_url(base: str, schema: str) -> str:
    """``base`` with a search_path on ``schema``."""
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema(base: str) -> Iterator[str]:
    """The URL of a new, empty schema of the database at ``base``, dropped afterwards."""
    schema = f"unified_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(driver_url(base), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def wait_for_successes(store: Store, tasks: int, procs: list[subprocess.Popen[bytes]]) -> None:
    """Poll until ``tasks`` tasks succeeded; stop if a worker process died.

    Every 50 ms: each poll counts all tasks by state, which on 2 cores takes CPU from the workers being measured.
    """
    while store.count_tasks_by_state().get("success", 0) < tasks:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a worker process died: see its output above")
        time.sleep(0.05)


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    """SIGTERM every worker process and wait for each (they hand back what they hold)."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout)


def measure(base: str, tasks: int, processes: int, concurrency: int) -> float:
    """Seconds for ``processes`` workers to run ``tasks`` no-op tasks queued beforehand, on a fresh schema."""
    with fresh_schema(base) as url:
        return _measure(url, tasks, processes, concurrency)


def _measure(url: str, tasks: int, processes: int, concurrency: int) -> float:
    store = SqlStore(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        engine = Engine(store)
        for start in range(0, tasks, 2000):
            engine.submit([Task(func="benchmarks.workloads:noop") for _ in range(min(2000, tasks - start))])
        options = json.dumps({"concurrency": concurrency, "poll_seconds": 5.0})
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, options], cwd=ROOT, env=env)
                 for _ in range(processes)]  # fmt: skip
        wait_for_successes(store, tasks, procs)
        return time.perf_counter() - started
    finally:
        stop_workers(procs)
        store.close()


def main() -> None:
    """Parse the options, run each fleet size and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("UNIFIED_BENCH_POSTGRES_URL",
                                                        "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=4, help="runner threads per worker process")
    args = parser.parse_args()
    print(f"{args.tasks} no-op tasks, {args.concurrency} runner threads per process, {os.cpu_count()} CPUs")
    print("| worker processes | seconds | tasks/s |\n| ---: | ---: | ---: |")
    for processes in [int(n) for n in args.processes.split(",")]:
        seconds = measure(args.url, args.tasks, processes, args.concurrency)
        print(f"| {processes} | {seconds:.1f} | {args.tasks / seconds:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
