"""The benchmark workloads (W1-W4 of docs/performance.md) as functions of a store URL.

Each returns the seconds from the first queue call to the moment the last result is known; process start,
imports and store creation are outside the timing.
"""

from __future__ import annotations

import threading
import time

from unified.task import Task, TaskContext
from unified.task_manager import TaskManager
from unified.workflow.workflow import Workflow, WorkflowManager


def noop() -> None:
    """A task that does nothing."""


def step(ctx: TaskContext) -> int:
    """Return the upstream result + 1 (0 at the start of a chain)."""
    return sum(ctx.upstream.values()) + 1


def add_upstream(ctx: TaskContext) -> int:
    """Return the sum of the upstream results (1 for a task with none)."""
    return sum(ctx.upstream.values()) if ctx.upstream else 1


def fails_twice(ctx: TaskContext) -> int:
    """Raise on attempts 1 and 2, succeed on attempt 3."""
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return ctx.attempt


def w1_fan_out(url: str, n: int = 10_000, workers: int = 2) -> float:
    """W1: n independent no-op tasks queued through queue_task, then all awaited."""
    with TaskManager(store=url, max_workers=workers) as tm:
        start = time.perf_counter()
        ids = [tm.queue_task(noop) for _ in range(n)]
        for task_id in ids:
            tm.wait(task_id)
        return time.perf_counter() - start


def w1_concurrent(url: str, n: int = 10_000, workers: int = 2, producers: int = 8) -> float:
    """W1 queued by ``producers`` threads at once (as API requests arrive), each queue_task acknowledged after its own
    commit; then all awaited. On SQLite the producers' transactions share commits (group commit)."""
    with TaskManager(store=url, max_workers=workers) as tm:
        ids: list[list[str]] = [[] for _ in range(producers)]
        shares = [n // producers + (i < n % producers) for i in range(producers)]  # n in all, whatever n is

        def produce(mine: list[str], share: int) -> None:
            mine.extend(tm.queue_task(noop) for _ in range(share))

        threads = [threading.Thread(target=produce, args=pair) for pair in zip(ids, shares, strict=True)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for task_id in (task_id for mine in ids for task_id in mine):
            tm.wait(task_id)
        return time.perf_counter() - start


def w1_batched(url: str, n: int = 10_000, workers: int = 2) -> float:
    """W1 with the bulk APIs: the n queue_task calls inside one TaskManager.batch() (one commit), then wait_all."""
    with TaskManager(store=url, max_workers=workers) as tm:
        start = time.perf_counter()
        with tm.batch():
            ids = [tm.queue_task(noop) for _ in range(n)]
        tm.wait_all(ids)
        return time.perf_counter() - start


def _run_workflow(url: str, workflow: Workflow, workers: int) -> float:
    with WorkflowManager(task_manager=TaskManager(store=url, max_workers=workers)) as wm:
        workflow_id = wm.register(workflow)
        start = time.perf_counter()
        run_id = wm.start_workflow(workflow_id)
        wm.task_manager._wait_until(lambda: wm.store.get_run(run_id).state != "running", None, "run", runs=True)
        elapsed = time.perf_counter() - start
        assert wm.store.get_run(run_id).state == "success", "benchmark run did not succeed"
        wm.task_manager.shutdown()
        return elapsed


def w2_chain(url: str, n: int = 1_000, workers: int = 2) -> float:
    """W2: a workflow of n tasks, each depending on the previous one."""
    tasks = [Task(task_id="t0", func=step)]
    tasks += [Task(task_id=f"t{i}", func=step, dependencies=[f"t{i - 1}"]) for i in range(1, n)]
    return _run_workflow(url, Workflow(f"chain-{n}", tasks=tasks), workers)


def w3_layered(url: str, layers: int = 20, width: int = 100, workers: int = 2) -> float:
    """W3: layers x width; task i of layer k depends on tasks i and (7i+3) mod width of layer k-1."""
    tasks = [Task(task_id=f"0-{i}", func=add_upstream) for i in range(width)]
    for k in range(1, layers):
        for i in range(width):
            deps = sorted({f"{k - 1}-{i}", f"{k - 1}-{(7 * i + 3) % width}"})
            tasks.append(Task(task_id=f"{k}-{i}", func=add_upstream, dependencies=deps))
    return _run_workflow(url, Workflow(f"layered-{layers}x{width}", tasks=tasks), workers)


def w4_retries(url: str, n: int = 1_000, workers: int = 2) -> float:
    """W4: n tasks that raise on attempts 1 and 2 and succeed on attempt 3, retry delay 0."""
    with TaskManager(store=url, max_workers=workers) as tm:
        start = time.perf_counter()
        ids = [tm.queue_task(fails_twice, max_retries=2) for _ in range(n)]
        for task_id in ids:
            tm.wait(task_id)
        elapsed = time.perf_counter() - start
        assert all(tm.store.get_task(i).state == "success" for i in ids[:10])
        return elapsed


_started: list[float] = []


def mark_start() -> None:
    """A task that records when it started (perf_counter), for the queue-to-start latency."""
    _started.append(time.perf_counter())


def queue_to_start(url: str, samples: int = 200, workers: int = 2) -> list[float]:
    """Milliseconds from queue_task to the start of the task's function, one task at a time on an idle engine."""
    latencies = []
    with TaskManager(store=url, max_workers=workers) as tm:
        tm.wait(tm.queue_task(mark_start))  # warm-up: threads started, statements compiled
        for _ in range(samples):
            _started.clear()
            queued = time.perf_counter()
            tm.wait(tm.queue_task(mark_start))
            latencies.append((_started[0] - queued) * 1000)
    return latencies
