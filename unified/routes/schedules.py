"""``/schedules``: create (a workflow or one task, on cron or an interval), list with next fire time, read,
delete, pause, resume, backfill."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from unified.auth import Principal
from unified.errors import ValidationError
from unified.routes.deps import (
    ADMIN,
    MAX_PAGE,
    OPERATOR,
    VIEWER,
    build_task,
    page_of,
    services,
    set_target,
)
from unified.schemas import BackfillIn, FireOut, ScheduleDetail, ScheduleIn, SchedulePage

router = APIRouter(prefix="/schedules", tags=["schedules"])
NEXT_FIRES = 5
WHEN_FIELDS = {"cron", "interval_seconds", "timezone", "start_at", "end_at", "catchup", "max_active_runs"}


def detail(request: Request, schedule_id: str) -> ScheduleDetail:
    """A schedule with its next fire times."""
    manager = services(request).task_manager
    times = [t.isoformat() for t in manager.next_fire_times(schedule_id, NEXT_FIRES)]
    return ScheduleDetail(**manager.get_schedule(schedule_id), next_fire_times=times)


@router.post("", response_model=ScheduleDetail, status_code=status.HTTP_201_CREATED, summary="Create a schedule")
def create_schedule(request: Request, body: ScheduleIn, principal: Principal = ADMIN) -> ScheduleDetail:
    """Schedule a workflow run or a task on a cron expression or every ``interval_seconds`` (bad cron: 422)."""
    svc = services(request)
    if (body.workflow_id is None) == (body.task is None):
        raise ValidationError("give exactly one of 'workflow_id' (a workflow to run) or 'task' (a task to queue)")
    when = body.model_dump(include=WHEN_FIELDS)
    if body.workflow_id is not None:
        manager = svc.workflow_manager
        manager.get_workflow(body.workflow_id)
        schedule_id = manager.schedule_workflow(
            body.workflow_id, params=body.params, name=body.name, sla_seconds=body.sla_seconds, **when
        )
    else:
        if body.sla_seconds is not None:
            raise ValidationError("sla_seconds applies to workflow schedules only: schedule a workflow for it")
        task = build_task(body.task, svc, principal)  # type: ignore[arg-type]
        schedule_id = svc.task_manager.schedule_task(task, name=body.name, **when)
    set_target(request, schedule_id)
    return detail(request, schedule_id)


@router.get("", response_model=SchedulePage, dependencies=[VIEWER], summary="List schedules")
def list_schedules(
    request: Request, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50, cursor: str | None = None
) -> SchedulePage:
    """Schedules, oldest first, each with its next fire time and last fire; paginated."""
    items, next_cursor = page_of(services(request).task_manager.list_schedules(), cursor, limit)
    return SchedulePage(items=items, next_cursor=next_cursor)


@router.get("/{schedule_id}", response_model=ScheduleDetail, dependencies=[VIEWER], summary="A schedule")
def get_schedule(request: Request, schedule_id: str) -> ScheduleDetail:
    """A schedule with its next five fire times."""
    return detail(request, schedule_id)


@router.delete(
    "/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[ADMIN], summary="Delete a schedule"
)
def delete_schedule(request: Request, schedule_id: str) -> Response:
    """Delete a schedule; what it started stays in the history."""
    manager = services(request).task_manager
    manager.get_schedule(schedule_id)
    manager.remove_schedule(schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{schedule_id}/pause", response_model=ScheduleDetail, dependencies=[OPERATOR], summary="Pause")
def pause_schedule(request: Request, schedule_id: str) -> ScheduleDetail:
    """Stop firing the schedule until it is resumed."""
    services(request).task_manager.pause_schedule(schedule_id)
    return detail(request, schedule_id)


@router.post("/{schedule_id}/resume", response_model=ScheduleDetail, dependencies=[OPERATOR], summary="Resume")
def resume_schedule(request: Request, schedule_id: str) -> ScheduleDetail:
    """Fire the schedule again; fire times missed while paused run only if its catchup is on."""
    services(request).task_manager.resume_schedule(schedule_id)
    return detail(request, schedule_id)


@router.post("/{schedule_id}/backfill", response_model=list[FireOut], dependencies=[OPERATOR], summary="Backfill")
def backfill(request: Request, schedule_id: str, body: BackfillIn) -> list[FireOut]:
    """Run the schedule's fire times in ``[start, end]`` (up to now) that never fired; one entry per fire."""
    fires = services(request).task_manager.backfill(schedule_id, body.start, body.end)
    return [FireOut(**f) for f in fires]
