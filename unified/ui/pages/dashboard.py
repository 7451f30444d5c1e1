"""The dashboard (``/``): runs and tasks by state over 24 hours, running tasks, failures, queues, next fires."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import Response

from unified.auth import Role
from unified.ui.pages.base import Page, Ui, page_router, render

router = page_router()

DAY_SECONDS = 24 * 3600
MAX_DAY_RUNS = 2000  # runs counted for the 24-hour figures
MAX_DAY_TASKS = 5000  # newest tasks scanned for the 24-hour task figures
SCAN_PAGE = 1000
CHART_RUNS = 60


def day_task_counts(ui: Ui, since: float) -> tuple[Counter[str], bool]:
    """Tasks created since ``since`` by state, scanning newest first in pages; True if the scan hit its cap."""
    counts: Counter[str] = Counter()
    before: int | None = None
    scanned = 0
    while scanned < MAX_DAY_TASKS:
        page = ui.svc.store.list_tasks(limit=SCAN_PAGE, before_seq=before)
        for record in page:
            if record.created_at < since:
                return counts, False
            counts[record.state] += 1
        scanned += len(page)
        if len(page) < SCAN_PAGE:
            return counts, False
        before = page[-1].seq
    return counts, True


def duration_chart(runs: list[Any], width: int = 600, height: int = 120) -> dict[str, Any]:
    """Bars of finished runs' durations, oldest left: positions computed here, drawn as SVG by the template."""
    done = [r for r in reversed(runs) if r.finished_at is not None and r.started_at is not None][-CHART_RUNS:]
    if not done:
        return {"bars": [], "width": width, "height": height, "max": 0.0}
    longest = max(r.finished_at - r.started_at for r in done) or 1.0
    step = width / max(len(done), 12)
    bars = []
    for n, run in enumerate(done):
        seconds = run.finished_at - run.started_at
        tall = max(2.0, (height - 16) * seconds / longest)
        bars.append(
            {"x": n * step + 1, "y": height - tall, "w": max(step - 2, 1), "h": tall, "run": run, "seconds": seconds}
        )
    return {"bars": bars, "width": width, "height": height, "max": longest}


def next_fires(ui: Ui, limit: int = 6) -> list[dict[str, Any]]:
    """The schedules that fire next (unpaused, soonest first)."""
    manager = ui.svc.workflow_manager
    found = [s for s in manager.list_schedules() if not s["paused"] and s["next_fire_time"]]
    return sorted(found, key=lambda s: s["next_fire_time"])[:limit]


@router.get("/")
def dashboard(ui: Page) -> Response:
    """The dashboard; its live part refreshes itself every few seconds (htmx)."""
    ui.require(Role.VIEWER)
    store = ui.svc.store
    since = ui.now() - DAY_SECONDS
    runs = store.list_runs(limit=MAX_DAY_RUNS + 1, since=since)
    run_counts = Counter(r.state for r in runs[:MAX_DAY_RUNS])
    task_counts, tasks_capped = day_task_counts(ui, since)
    all_states = store.count_tasks_by_state()
    names = store.workflow_names()
    return render(
        ui,
        "dashboard.html",
        run_counts=run_counts,
        runs_capped=len(runs) > MAX_DAY_RUNS,
        task_counts=task_counts,
        tasks_capped=tasks_capped,
        queue={s: all_states.get(s, 0) for s in ("queued", "retrying", "pending", "running")},
        running=store.list_tasks("running", limit=10),
        failures=store.list_tasks("failure", limit=8),
        timeouts=store.list_tasks("timeout", limit=4),
        fires=next_fires(ui),
        chart=duration_chart(runs),
        workflow_names=names,
        max_day_tasks=MAX_DAY_TASKS,
    )
