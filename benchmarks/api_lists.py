"""List endpoints of the REST API on a SQLite store holding 100,000 tasks: median milliseconds per request.

The store is filled through its own verbs in batches (workflows, runs of 10 tasks each, a share of them failed),
then each case is requested 20 times through the ASGI app in this process (Starlette's TestClient: no network,
no uvicorn) after one warm-up request. Issue 4 asks for every list endpoint under 100 ms at this size.

    python benchmarks/api_lists.py [--tasks 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from unified.api import create_app
from unified.routes.deps import encode_cursor
from unified.server import ServerSettings
from unified.store import open_store
from unified.store.base import Store
from unified.store.records import RunRecord, TaskRecord, WorkflowRecord
from unified.utils import new_id

TASKS_PER_RUN = 10
WORKFLOWS = 100
BATCH_RUNS = 500
BUDGET_MS = 100.0


def fill(store: Store, total_tasks: int) -> None:
    """``total_tasks`` finished tasks in runs of 10 over 100 workflows; every 10th run failed."""
    now = time.time() - total_tasks
    spec = {"task_id": "t", "name": "t", "func": "json:dumps", "args": [], "kwargs": {}, "dependencies": [],
            "max_retries": 0, "timeout": None}  # fmt: skip
    workflows = [WorkflowRecord(new_id(), f"wf-{n}", "", [spec], 1, now, now) for n in range(WORKFLOWS)]
    for workflow in workflows:
        store.put_workflow(workflow)
    runs = total_tasks // TASKS_PER_RUN
    for first in range(0, runs, BATCH_RUNS):
        with store.atomic():
            tasks: list[TaskRecord] = []
            for n in range(first, min(first + BATCH_RUNS, runs)):
                t0 = now + n
                state = "failure" if n % 10 == 0 else "success"
                run = RunRecord(new_id(), workflows[n % WORKFLOWS].workflow_id, 1, state, {"n": n}, "api", t0, t0,
                                t0 + 1)  # fmt: skip
                store.insert_run(run)
                for k in range(TASKS_PER_RUN):
                    task_state = "failure" if state == "failure" and k == TASKS_PER_RUN - 1 else "success"
                    tasks.append(TaskRecord(
                        f"{run.run_id}.t{k}", f"t{k}", run.run_id, f"t{k}", {**spec, "task_id": f"t{k}"}, task_state,
                        attempts=1, result=k, created_at=t0, queued_at=t0, started_at=t0, finished_at=t0 + 0.5,
                    ))  # fmt: skip
            store.insert_tasks(tasks)


def cases(store: Store) -> dict[str, str]:
    """The requests to time: first pages, deep cursor pages and filtered pages of /tasks, /runs and /workflows."""
    oldest_seqs = store.list_tasks(limit=1, offset=0)  # newest first: the newest seq tells how deep to go
    deep_seq = max(oldest_seqs[0].seq // 100, 2) if oldest_seqs else 2
    runs = len(store.list_runs(limit=10**9))
    workflow_id = store.list_workflows()[0].workflow_id
    return {
        "GET /tasks": "/tasks?limit=50",
        "GET /tasks deep cursor": f"/tasks?limit=50&cursor={encode_cursor('s', deep_seq)}",
        "GET /tasks?state=failure": "/tasks?limit=50&state=failure",
        "GET /tasks?state=failure deep": f"/tasks?limit=50&state=failure&cursor={encode_cursor('s', deep_seq)}",
        "GET /runs": "/runs?limit=50",
        "GET /runs deep cursor": f"/runs?limit=50&cursor={encode_cursor('o', runs - 50)}",
        "GET /runs?state=failure": "/runs?limit=50&state=failure",
        "GET /runs?workflow_id=": f"/runs?limit=50&workflow_id={workflow_id}",
        "GET /workflows": "/workflows?limit=50",
        "GET /workflows deep cursor": f"/workflows?limit=50&cursor={encode_cursor('o', WORKFLOWS - 50)}",
        "GET /workflows/{id}/runs": f"/workflows/{workflow_id}/runs?limit=50",
    }


def main() -> None:
    """Fill a temp SQLite store, time each list request, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        store = open_store(url)
        started = time.perf_counter()
        fill(store, options.tasks)
        filled = time.perf_counter() - started
        paths = cases(store)
        store.close()
        settings = ServerSettings(database_url=url, workers=0, scheduler=False, announce=False)
        app = create_app(settings)
        print(f"api_lists: {options.tasks:,} tasks in SQLite (filled in {filled:.1f} s), {options.repeat} requests "
              f"each; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"{datetime.now(UTC).date().isoformat()}")  # fmt: skip
        print(f"{'request':34} {'median ms':>10} {'max ms':>8} {'items':>6}")
        over = []
        with TestClient(app) as client:
            client.headers["X-API-Key"] = app.state.server.created_admin_key
            for name, path in paths.items():
                response = client.get(path)  # warm-up, and a check that the request works
                response.raise_for_status()
                times = []
                for _ in range(options.repeat):
                    t0 = time.perf_counter()
                    client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                median = statistics.median(times)
                over += [name] if median > BUDGET_MS else []
                print(f"{name:34} {median:10.1f} {max(times):8.1f} {len(response.json()['items']):6}")
        print("all under 100 ms" if not over else f"over 100 ms: {', '.join(over)}")


if __name__ == "__main__":
    main()
