"""``/tasks``: queue an ad-hoc registered task, list and read tasks, cancel, retry, read their logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from unified.auth import Principal
from unified.errors import ConflictError, NotFoundError
from unified.routes.deps import (
    MAX_PAGE,
    OPERATOR,
    VIEWER,
    build_task,
    decode_cursor,
    encode_cursor,
    page_of,
    safe_task,
    services,
    set_target,
)
from unified.schemas import LogPage, TaskAction, TaskIn, TaskOut, TaskPage, TaskQueued
from unified.task import TaskState
from unified.task_manager import tasks_metadata

router = APIRouter(prefix="/tasks", tags=["tasks"])

TaskStateFilter = Annotated[
    str | None, Query(pattern=f"^({'|'.join(s.value for s in TaskState)})$", description="task state")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@router.post("", response_model=TaskQueued, status_code=status.HTTP_202_ACCEPTED, summary="Queue a task")
def queue_task(request: Request, body: TaskIn, principal: Principal = OPERATOR) -> TaskQueued:
    """Queue a registered task (or, for admins on a server started with --allow-shell, a shell command)."""
    svc = services(request)
    task_id = svc.task_manager.engine.submit([build_task(body, svc, principal)])[0]
    set_target(request, task_id)
    return TaskQueued(task_id=task_id, state=svc.store.get_task(task_id).state)


@router.get("", response_model=TaskPage, dependencies=[VIEWER], summary="List tasks, newest first")
def list_tasks(
    request: Request,
    state: TaskStateFilter = None,
    run_id: str | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Tasks, newest first, filtered by state and run; paginated with a cursor that stays valid as tasks arrive."""
    store = services(request).store
    before = decode_cursor(cursor, "s")
    found = store.list_tasks(state, run_id, limit=limit + 1, before_seq=before)
    items = found[:limit]
    next_cursor = encode_cursor("s", items[-1].seq) if len(found) > limit else None
    return TaskPage(
        items=[TaskOut(**safe_task(metadata)) for metadata in tasks_metadata(store, items)],
        next_cursor=next_cursor,
    )


def escaped_action(request: Request, action: str) -> bool:
    """True when the URL's ``/<action>`` is escaped (``/tasks/a%2Flogs``): the client quoted the whole task id, as
    ``unified.client`` does, and the id itself ends in ``/<action>``. The router sees paths decoded, so a task id
    ending in ``/logs``, ``/cancel`` or ``/retry`` would otherwise read as that action on the id before it."""
    raw = request.scope.get("raw_path")
    return isinstance(raw, bytes) and not raw.split(b"?")[0].endswith(b"/" + action.encode())


def refuse_escaped_action(request: Request, task_id: str, action: str) -> None:
    """A NotFoundError for a POST whose URL names a task (an id ending in an escaped ``/<action>``) and no action."""
    if escaped_action(request, action):
        raise NotFoundError(
            f"POST /tasks/{{id}} takes an action: to {action} task {task_id + '/' + action!r}, "
            f"send POST /tasks/<the id, quoted>/{action}"
        )


@router.post("/{task_id:path}/cancel", response_model=TaskAction, dependencies=[OPERATOR], summary="Cancel a task")
def cancel_task(request: Request, task_id: str) -> TaskAction:
    """Cancel a task that has not finished (409 if it has)."""
    refuse_escaped_action(request, task_id, "cancel")
    svc = services(request)
    set_target(request, task_id)
    if not svc.task_manager.cancel_task(task_id):
        state = svc.store.get_task(task_id).state
        raise ConflictError(f"task {task_id!r} already ended {state}; only unfinished tasks can be canceled")
    return TaskAction(task_id=task_id, state=svc.store.get_task(task_id).state)


@router.post("/{task_id:path}/retry", response_model=TaskAction, dependencies=[OPERATOR], summary="Retry a task")
def retry_task(request: Request, task_id: str) -> TaskAction:
    """Run a failed, timed-out, canceled or skipped task again with a fresh retry budget (409 otherwise)."""
    refuse_escaped_action(request, task_id, "retry")
    svc = services(request)
    set_target(request, task_id)
    svc.task_manager.retry_task(task_id)
    return TaskAction(task_id=task_id, state=svc.store.get_task(task_id).state)


@router.get("/{task_id:path}/logs", response_model=LogPage, dependencies=[VIEWER], summary="A task's log lines")
def task_logs(
    request: Request, task_id: str, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000, cursor: str | None = None
) -> LogPage:
    """The captured log lines of every attempt, oldest first; paginated."""
    if escaped_action(request, "logs"):  # GET /tasks/a%2Flogs: the metadata of the task "a/logs"
        return JSONResponse(jsonable_encoder(get_task(request, f"{task_id}/logs")))  # type: ignore[return-value]
    items, next_cursor = page_of(services(request).task_manager.get_task_logs(task_id), cursor, limit)
    return LogPage(items=items, next_cursor=next_cursor)


# last: a task id may hold a slash (ids take any character), so this path takes the rest of the URL
@router.get("/{task_id:path}", response_model=TaskOut, dependencies=[VIEWER], summary="A task's metadata")
def get_task(request: Request, task_id: str) -> TaskOut:
    """Everything known about a task: state, attempts, timings, result, error and attempt history."""
    return TaskOut(**safe_task(services(request).task_manager.get_task_metadata(task_id)))
