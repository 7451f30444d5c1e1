"""Task pages: the list (state and run filters, cursor pages) and one task (metadata, attempts, logs, actions).

Task ids may hold any character (a slash included), so a task's id is always the last part of its URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from unified.auth import Role
from unified.errors import ConflictError, NotFoundError, ValidationError
from unified.interventions import retry_blocker
from unified.routes.deps import decode_cursor, encode_cursor
from unified.store.records import TaskRecord
from unified.task import FINISHED_STATES
from unified.ui.pages.base import (
    PAGE_SIZE,
    RETRYABLE,
    SECURITY_HEADERS,
    TASK_STATES,
    Form,
    Page,
    Ui,
    back,
    one_of,
    page_router,
    render,
    url_part,
)

router = page_router()

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_LOG_LINES = 2000
MAX_PREFIX_RUNS = 5000  # newest runs searched for a run id prefix in the run filter
RUN_SCAN_PAGE = 1000


def run_named(ui: Ui, text: str) -> str:
    """The run the Tasks page's filter names: its full id, or the start of it (the tables show 12 characters) that
    one run alone of the newest MAX_PREFIX_RUNS begins with; ``text`` itself when none does (no task matches).

    The store has no prefix lookup, so the runs are scanned newest first, a page at a time."""
    store = ui.svc.store
    try:
        return store.get_run(text).run_id
    except NotFoundError:
        pass
    found: list[str] = []
    before: tuple[float, int] | None = None
    for _ in range(MAX_PREFIX_RUNS // RUN_SCAN_PAGE):
        page = store.list_runs(limit=RUN_SCAN_PAGE, before=before)
        found += [r.run_id for r in page if r.run_id.startswith(text)]
        if len(page) < RUN_SCAN_PAGE or len(found) > 1:
            break
        before = (page[-1].created_at, page[-1].seq)
    if len(found) > 1:
        raise ValidationError(f"more than one run id starts with {text!r} ({', '.join(found[:2])}): give more of it")
    return found[0] if found else text


@router.get("/ui/tasks")
def tasks_page(ui: Page, state: str | None = None, run: str | None = None, cursor: str | None = None) -> Response:
    """Tasks, newest first, filtered by state and run; a cursor keeps pages stable while tasks arrive."""
    ui.require(Role.VIEWER)
    task_state = one_of(state, TASK_STATES)
    before = decode_cursor(cursor or None, "s")
    run = run_named(ui, run.strip()) if run and run.strip() else None
    found = ui.svc.store.list_tasks(task_state, run, limit=PAGE_SIZE + 1, before_seq=before)
    items = found[:PAGE_SIZE]
    next_cursor = encode_cursor("s", items[-1].seq) if len(found) > PAGE_SIZE else None
    return render(
        ui,
        "tasks.html",
        tasks=items,
        task_state=task_state,
        run=run or "",
        cursor=cursor or "",
        next_cursor=next_cursor,
    )


def shown_logs(ui: Ui, task_id: str, level: str | None) -> tuple[list[dict[str, object]], int]:
    """The task's newest log lines at ``level`` or above (at most MAX_LOG_LINES), and how many matched."""
    lines = ui.svc.task_manager.get_task_logs(task_id)
    if level in LOG_LEVELS:
        floor = LOG_LEVELS.index(level)
        lines = [x for x in lines if str(x["level"]).upper() not in LOG_LEVELS[:floor]]
    return lines[-MAX_LOG_LINES:], len(lines)


@router.get("/ui/task-logs/{task_id:path}")
def task_logs(task_id: str, ui: Page, level: str | None = None, follow: str | None = None) -> Response:
    """The log panel of a task page alone (swapped in by the level filter and by follow mode)."""
    ui.require(Role.VIEWER)
    record = ui.svc.store.get_task(task_id)
    lines, matched = shown_logs(ui, task_id, level)
    return render(
        ui, "task_logs.html", task=record, lines=lines, matched=matched, level=level or "", follow=bool(follow),
        levels=LOG_LEVELS, max_lines=MAX_LOG_LINES, finished=record.state in FINISHED_STATES,
    )  # fmt: skip


def stamp(record: TaskRecord) -> str:
    """What changes when a task moves on (a new state or attempt): the task head is sent again only then."""
    return f"{record.state}.{record.attempts}.{record.started_at}.{record.finished_at}"


def head_context(ui: Ui, task_id: str) -> dict[str, Any]:
    """What the head of a task page shows (state, actions, metadata, attempts), and whether it is finished."""
    meta = ui.svc.task_manager.get_task_metadata(task_id)
    record = ui.svc.store.get_task(task_id)
    blocker = retry_blocker(ui.svc.store.get_tasks(record.dependencies)) if record.state in RETRYABLE else None
    return {"meta": meta, "task": record, "finished": record.state in FINISHED_STATES, "retryable": RETRYABLE,
            "blocker": blocker, "stamp": stamp(record)}  # fmt: skip


@router.get("/ui/tasks/{task_id:path}")
def task_page(task_id: str, ui: Page, level: str | None = None) -> Response:
    """One task: its metadata, every attempt with its error and traceback, and its logs."""
    ui.require(Role.VIEWER)
    context = head_context(ui, task_id)
    lines, matched = shown_logs(ui, task_id, level)
    return render(
        ui, "task.html", lines=lines, matched=matched, level=level or "", follow=False, levels=LOG_LEVELS,
        max_lines=MAX_LOG_LINES, **context,
    )  # fmt: skip


@router.get("/ui/task-head/{task_id:path}")
def task_head(task_id: str, ui: Page, seen: str | None = None) -> Response:
    """The head of a task page alone, refreshed by htmx while the task goes on; 204 (htmx keeps what it shows)
    while the task is where it was when ``seen``."""
    ui.require(Role.VIEWER)
    if seen is not None and seen == stamp(ui.svc.store.get_task(task_id)):
        return Response(status_code=204, headers=SECURITY_HEADERS)
    return render(ui, "task_head.html", **head_context(ui, task_id))


@router.post("/ui/task-actions/{action}/{task_id:path}")
def task_action(request: Request, action: str, task_id: str, ui: Page, form: Form) -> Response:
    """``cancel``: cancel a task that has not finished; ``retry``: run a failed, timed-out, canceled or skipped task
    again with a fresh retry budget."""
    ui.require(Role.OPERATOR)
    request.state.audit_target = task_id
    manager = ui.svc.task_manager
    if action == "cancel":
        if not manager.cancel_task(task_id):
            state = ui.svc.store.get_task(task_id).state
            raise ConflictError(f"task {task_id!r} already ended {state}; only unfinished tasks can be canceled")
        message = "task canceled"
    elif action == "retry":
        manager.retry_task(task_id)
        message = "task queued again"
    else:
        raise NotFoundError(f"tasks have no action {action!r}: use cancel or retry")
    return back(ui, form, f"/ui/tasks/{url_part(task_id)}", message)
