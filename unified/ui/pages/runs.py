"""Run pages: the list, and one run (graph, Gantt timeline of attempts, tasks with their errors, actions, live)."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from unified.auth import Role
from unified.errors import NotFoundError
from unified.interventions import retry_blocker
from unified.routes.runs import runs_page_after
from unified.store.records import AttemptRecord, TaskRecord
from unified.task import FINISHED_STATES
from unified.ui.pages.base import (
    PAGE_SIZE,
    RETRYABLE,
    RUN_STATES,
    SECURITY_HEADERS,
    Form,
    Page,
    Ui,
    back,
    error_line,
    one_of,
    page_router,
    render,
)
from unified.ui.pages.workflows import graph_data, run_graph_nodes

router = page_router()


@router.get("/ui/runs")
def runs_page(ui: Page, workflow: str | None = None, state: str | None = None, after: str | None = None) -> Response:
    """Runs, newest first, filtered by workflow and state; paginated on the server."""
    ui.require(Role.VIEWER)
    run_state = one_of(state, RUN_STATES)
    runs, next_page = runs_page_after(ui.svc, workflow or None, run_state, PAGE_SIZE, after or None)
    return render(
        ui,
        "runs.html",
        runs=runs,
        next_page=next_page,
        paged=bool(after),
        workflow=workflow or "",
        run_state=run_state,
        workflow_names=ui.svc.store.workflow_names(),
    )


MAX_TIMELINE_TASKS = 300  # vis-timeline froze the browser for some 20 s on a run of 1,500 tasks
MAX_LIVE_ROWS = 300  # task rows sent by one live update; rows changed beyond come with the next


def row_numbers(rows: str | None) -> set[int] | None:
    """The task rows a live update asks for (``3,17,18``: positions in the run's task order), at most
    MAX_LIVE_ROWS; None (every row) when it names none."""
    if rows is None:
        return None
    numbers = {int(part) for part in rows.split(",") if part.strip().isdigit() and len(part.strip()) < 10}
    return set(sorted(numbers)[:MAX_LIVE_ROWS])


def live_context(ui: Ui, run_id: str, rows: set[int] | None = None) -> dict[str, Any]:
    """What the live part of a run page shows: state, actions, counts, and the task rows ``rows`` (every row when
    None), each with its attempts."""
    store = ui.svc.store
    run = store.get_run(run_id)
    tasks = store.run_tasks(run_id)
    shown = [(n, t) for n, t in enumerate(tasks) if rows is None or n in rows]
    attempts = store.attempts_of(t.id for _, t in shown)
    try:
        workflow = store.get_workflow(run.workflow_id) if run.workflow_id else None
    except NotFoundError:  # deleted since: its runs stay as history
        workflow = None
    by_id = {t.id: t for t in tasks}
    held = {  # no Retry button: an upstream task must be retried first (409 otherwise)
        t.id for _, t in shown if t.state in RETRYABLE and retry_blocker(by_id[d] for d in t.dependencies if d in by_id)
    }
    return {
        "run": run,
        "tasks": tasks,
        "rows": shown,
        "held": held,
        "attempts": attempts,
        "workflow": workflow,
        "retryable": RETRYABLE,
        "finished": FINISHED_STATES,
        "failed": [t for t in tasks if t.state in RETRYABLE],
        "counts": {s: sum(1 for t in tasks if t.state == s) for s in {t.state for t in tasks}},
    }


@router.get("/ui/runs/{run_id}")
def run_page(run_id: str, ui: Page) -> Response:
    """One run: the graph coloured by task state, the timeline of attempts (up to MAX_TIMELINE_TASKS tasks),
    tasks and actions."""
    ui.require(Role.VIEWER)
    context = live_context(ui, run_id)
    return render(ui, "run.html", graph=graph_data(run_graph_nodes(context["tasks"])), max_timeline=MAX_TIMELINE_TASKS,
                  **context)  # fmt: skip


@router.get("/ui/runs/{run_id}/live")
def run_live(run_id: str, ui: Page, rows: str | None = None) -> Response:
    """The live part of the run page alone: its head, and the task rows ``rows`` names (``3,17,18``: the rows whose
    task moved since the page showed it; every row without it)."""
    ui.require(Role.VIEWER)
    return render(ui, "run_live.html", **live_context(ui, run_id, row_numbers(rows)))


def _bar(task: TaskRecord, start: float, end: float, state: str, label: str, error: str = "") -> dict[str, Any]:
    return {"group": task.task_id, "start": start * 1000, "end": max(end, start) * 1000, "state": state,
            "label": label, "error": error}  # fmt: skip


def timeline_items(ui: Ui, tasks: list[TaskRecord], attempts: dict[str, list[AttemptRecord]]) -> list[dict[str, Any]]:
    """One bar per attempt, and one per wait: in the queue before the first, and for the backoff before a retry.

    Times are epoch milliseconds; what is still going on ends now."""
    now = ui.now()
    items: list[dict[str, Any]] = []
    for task in tasks:
        tries = attempts.get(task.id, [])
        queued_from = task.queued_at or task.created_at
        first = tries[0].started_at if tries else (now if task.state == "queued" else None)
        if queued_from and first is not None and first - queued_from > 0.001:
            items.append(_bar(task, queued_from, first, "queued", "queued"))
        previous_end: float | None = None
        for attempt in tries:
            if previous_end is not None and attempt.started_at - previous_end > 0.001:
                items.append(_bar(task, previous_end, attempt.started_at, "retrying", "retry wait"))
            end = attempt.finished_at if attempt.finished_at is not None else now
            label = f"#{attempt.number} {attempt.state}"
            items.append(_bar(task, attempt.started_at, end, attempt.state, label, error_line(attempt.error)))
            previous_end = attempt.finished_at
        if task.state == "retrying" and previous_end is not None:
            items.append(_bar(task, previous_end, now, "retrying", "waiting to retry"))
    return items


@router.get("/ui/runs/{run_id}/data")
def run_data(run_id: str, ui: Page, graph: str | None = None) -> Response:
    """The run as JSON for the page's script: task states for the graph and attempt bars for the timeline; with
    ``graph=1`` the graph's nodes too (for a run that gained tasks since the page was made)."""
    ui.require(Role.VIEWER)
    store = ui.svc.store
    run = store.get_run(run_id)
    tasks = store.run_tasks(run_id)
    timeline = len(tasks) <= MAX_TIMELINE_TASKS  # else no attempts are read, and run.js draws no timeline
    body = {
        "run": {"run_id": run.run_id, "state": run.state},
        "tasks": [{"id": t.task_id, "state": t.state, "attempts": t.attempts} for t in tasks],
        "items": timeline_items(ui, tasks, store.attempts_of(t.id for t in tasks)) if timeline else None,
        "now": ui.now() * 1000,
    }
    if graph:
        body["graph"] = graph_data(run_graph_nodes(tasks))
    return JSONResponse(body, headers=SECURITY_HEADERS)


@router.post("/ui/runs/{run_id}/{action}")
def run_action(request: Request, run_id: str, action: str, ui: Page, form: Form) -> Response:
    """``cancel``: cancel every unfinished task of the run; ``retry``: run its failed, timed-out and canceled tasks
    again, with what they skipped."""
    ui.require(Role.OPERATOR)
    request.state.audit_target = run_id
    manager = ui.svc.workflow_manager
    if action == "cancel":
        message = f"canceled {manager.cancel_run(run_id)} task(s)"
    elif action == "retry":
        message = f"retrying {manager.retry_run(run_id)} task(s)"
    else:
        raise NotFoundError(f"runs have no action {action!r}: use cancel or retry")
    return back(ui, form, f"/ui/runs/{run_id}", message)
