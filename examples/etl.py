"""A small ETL workflow: extract three sources in parallel, transform with a flaky step, load, report.

Functions are module-level so any worker process can import them (``examples.etl:extract``).
"""

from __future__ import annotations

import random

from unified.scheduler import When
from unified.task import Task, TaskContext
from unified.workflow.workflow import Workflow


def extract(source: str, ctx: TaskContext) -> list[int]:
    """Pretend to read rows from ``source``."""
    rng = random.Random(f"{source}-{ctx.run_id}")
    rows = [rng.randint(1, 100) for _ in range(5)]
    ctx.logger.info("extracted %d rows from %s", len(rows), source)
    return rows


def transform(ctx: TaskContext) -> dict[str, int]:
    """Sum the upstream rows; fails on its first attempt to show a retry."""
    if ctx.attempt == 1:
        ctx.logger.warning("warehouse connection reset; will retry")
        raise ConnectionError("connection reset by peer")
    totals = {name: sum(rows) for name, rows in ctx.upstream.items()}
    ctx.metadata["sources"] = len(totals)
    return totals


def load(ctx: TaskContext) -> int:
    """Pretend to write the totals; returns the grand total."""
    totals = ctx.upstream["transform"]
    ctx.logger.info("loading %d totals", len(totals))
    return sum(totals.values())


def report(ctx: TaskContext) -> str:
    """A one-line summary of the run."""
    return f"loaded {ctx.upstream['load']} for run {ctx.run_id[:8]}"


def build() -> Workflow:
    """The demo workflow."""
    sources = ["orders", "customers", "payments"]
    tasks = [Task(task_id=f"extract_{s}", func=extract, args=(s,), priority=5) for s in sources]
    tasks.append(
        Task(
            task_id="transform",
            func=transform,
            dependencies=[t.task_id for t in tasks],  # type: ignore[misc]
            max_retries=2,
            retry_delay_seconds=0.2,
        )
    )
    tasks.append(Task(task_id="load", func=load, dependencies=["transform"], timeout=30))
    tasks.append(Task(task_id="report", func=report, dependencies=["load"]))
    return Workflow(
        "demo-etl",
        "Extract three sources, transform with a retry, load and report",
        tasks,
        schedule=When(cron="*/2 * * * *"),  # every two minutes, so the server always has recent runs to show
    )


demo_etl = build()
