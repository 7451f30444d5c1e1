"""``unified schedules list|add|pause|resume|remove|backfill``: cron and interval schedules of workflows and tasks.

The schedules fire in whatever runs a scheduler on the same database (``unified server`` or ``unified scheduler``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from unified.errors import ValidationError
from unified.task import Task
from unified.ui.commands.common import (
    Db,
    Json,
    Params,
    Session,
    done,
    emit,
    fail,
    find_workflow,
    import_from_cwd,
    parse_params,
    parse_time,
    parse_value,
    session,
)

app = typer.Typer(help="Schedules: list, add, pause, resume, remove, backfill.", no_args_is_help=True)

ScheduleId = Annotated[str, typer.Argument(help="A schedule id (`unified schedules list` shows them).")]
COLUMNS = [
    ("schedule_id", "id"),
    ("name", "name"),
    ("runs", "runs"),
    ("timing", "when"),
    ("timezone", "zone"),
    ("paused", "paused"),
    ("next_fire_time", "next fire (UTC)"),
    ("last_fire_time", "last fire (UTC)"),
]


def row(schedule: dict[str, Any]) -> dict[str, Any]:
    """A schedule with what it runs and when, in one column each."""
    target = schedule["target"]
    task = target.get("task") or {}
    runs = target.get("workflow_id") or task.get("func") or task.get("command")
    timing = schedule["cron"] or f"every {schedule['interval_seconds']:g} s"
    return {**schedule, "runs": f"{schedule['target_type']} {runs}", "timing": timing}


@app.command("list")
def list_schedules(db: Db = None, as_json: Json = False) -> None:
    """Every schedule, oldest first, with its next fire time."""
    with session(db) as s:
        found = s.tasks.list_schedules()
    emit(found if as_json else [row(x) for x in found], COLUMNS, as_json, "schedules")


@app.command()
def add(
    workflow: Annotated[str | None, typer.Option(help="Run this workflow (id or name) on each fire.")] = None,
    task: Annotated[
        str | None, typer.Option(help="Queue this function (import path pkg.module:function) on each fire.")
    ] = None,
    arg: Annotated[list[str] | None, typer.Option(help="An argument of --task (JSON or text); repeatable.")] = None,
    cron: Annotated[str | None, typer.Option(help="A cron expression, e.g. '0 2 * * *' or @daily.")] = None,
    every: Annotated[float | None, typer.Option(min=0.001, help="Fire every this many seconds instead.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the cron expression.")] = "UTC",
    start: Annotated[str | None, typer.Option(help="First possible fire time (ISO-8601).")] = None,
    end: Annotated[str | None, typer.Option(help="Last possible fire time (ISO-8601).")] = None,
    catchup: Annotated[bool, typer.Option("--catchup", help="Run every fire time missed while down.")] = False,
    max_active_runs: Annotated[int, typer.Option(min=1, help="At most this many unfinished runs at once.")] = 1,
    param: Params = None,
    name: Annotated[str | None, typer.Option(help="A name for the schedule.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Add a schedule: a workflow (with --param) or one task, on --cron or --every N seconds."""
    if (workflow is None) == (task is None):
        raise fail("give exactly one of --workflow (a workflow id or name) or --task (pkg.module:function)")
    params = parse_params(param)
    if task is not None and params:
        raise fail("--param is for workflow schedules; give a task's arguments with --arg")
    when = {
        "cron": cron,
        "interval_seconds": every,
        "timezone": timezone,
        "start_at": parse_time(start, "--start"),
        "end_at": parse_time(end, "--end"),
        "catchup": catchup,
        "max_active_runs": max_active_runs,
    }
    with session(db) as s:
        if workflow is not None:
            workflow_id = find_workflow(s.workflows, workflow)["workflow_id"]
            schedule_id = s.workflows.schedule_workflow(workflow_id, params=params, name=name, **when)
        else:
            import_from_cwd()
            job = Task(func=task, args=[parse_value(a) for a in arg or ()])
            if job.func_path is None:
                raise ValidationError(f"--task {task!r} must be an import path pkg.module:function")
            schedule_id = s.tasks.schedule_task(job, name=name, **when)
        found = s.tasks.get_schedule(schedule_id)
        nxt = [t.isoformat() for t in s.tasks.next_fire_times(schedule_id, 5)]
    done(f"schedule {schedule_id} added; next fire times: {', '.join(nxt) or 'none'}",
         {**found, "next_fire_times": nxt}, as_json)  # fmt: skip


def _steer(db: str | None, schedule_id: str, as_json: bool, past: str, action: Callable[[Session], None]) -> None:
    with session(db) as s:
        s.tasks.get_schedule(schedule_id)  # an unknown id is an error, not a silent no-op
        action(s)
    done(f"schedule {schedule_id} {past}", {"schedule_id": schedule_id, "done": past}, as_json)


@app.command()
def pause(schedule_id: ScheduleId, db: Db = None, as_json: Json = False) -> None:
    """Stop firing a schedule until it is resumed."""
    _steer(db, schedule_id, as_json, "paused", lambda s: s.tasks.pause_schedule(schedule_id))


@app.command()
def resume(schedule_id: ScheduleId, db: Db = None, as_json: Json = False) -> None:
    """Fire a paused schedule again (missed fire times run only with catchup)."""
    _steer(db, schedule_id, as_json, "resumed", lambda s: s.tasks.resume_schedule(schedule_id))


@app.command()
def remove(schedule_id: ScheduleId, db: Db = None, as_json: Json = False) -> None:
    """Delete a schedule; what it started stays in the history."""
    _steer(db, schedule_id, as_json, "removed", lambda s: s.tasks.remove_schedule(schedule_id))


@app.command()
def backfill(
    schedule_id: ScheduleId,
    start: Annotated[str, typer.Option(help="From this time (ISO-8601).")],
    end: Annotated[str, typer.Option(help="Up to this time (ISO-8601; at most now).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Run the schedule's fire times in [start, end] that never fired."""
    begin, until = parse_time(start, "--start"), parse_time(end, "--end")
    with session(db) as s:
        fires = s.tasks.backfill(schedule_id, begin, until)  # type: ignore[arg-type]
    columns = [("fire_time", "fire time"), ("state", "state"), ("run_id", "run"), ("task_id", "task"),
               ("reason", "reason")]  # fmt: skip
    emit(fires, columns, as_json, "fires started")
