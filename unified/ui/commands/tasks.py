"""``unified tasks list|show|cancel|retry|logs``: task instances, their attempts and their captured log lines."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from unified.errors import ConflictError
from unified.task import FINISHED_STATES, TaskState
from unified.task_manager import tasks_metadata
from unified.ui.commands.common import (
    Db,
    Json,
    Limit,
    check_choice,
    console,
    done,
    emit,
    emit_one,
    print_json,
    session,
)
from unified.ui.commands.runs import TASK_COLUMNS, task_rows

app = typer.Typer(help="Inspect and steer tasks: list, show, cancel, retry, logs.", no_args_is_help=True)

TaskId = Annotated[str, typer.Argument(help="A task id (`unified tasks list` shows them; run_id.task_id in a run).")]
TASK_STATES = tuple(s.value for s in TaskState)
FOLLOW_POLL_SECONDS = 0.5
TASK_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("run_id", "run"),
    ("state", "state"),
    ("attempts", "attempts"),
    ("max_retries", "max retries"),
    ("timeout", "timeout s"),
    ("priority", "priority"),
    ("queue", "queue"),
    ("created_at", "created"),
    ("started_at", "started"),
    ("finished_at", "finished"),
    ("duration_seconds", "seconds"),
    ("result", "result"),
    ("error", "error"),
    ("reason", "reason"),
]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the task ends.")]


@app.command("list")
def list_tasks(
    state: Annotated[str | None, typer.Option(help=f"Only tasks in this state: {', '.join(TASK_STATES)}.")] = None,
    run: Annotated[str | None, typer.Option(help="Only the tasks of this run.")] = None,
    limit: Limit = 20,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Tasks, newest first."""
    check_choice(state, TASK_STATES, "--state")
    with session(db) as s:
        rows = task_rows(tasks_metadata(s.store, s.store.list_tasks(state, run, limit=limit)))
    emit(rows, [("id", "id"), ("name", "name"), *TASK_COLUMNS[1:]], as_json, "tasks")


@app.command()
def show(task_id: TaskId, db: Db = None, as_json: Json = False) -> None:
    """Everything known about a task: state, options, timings, result or error, and each attempt."""
    with session(db) as s:
        meta = s.tasks.get_task_metadata(task_id)
    if as_json:
        print_json(meta)
        return
    emit_one(meta, TASK_FIELDS, False)
    history = [("attempt", "attempt"), ("state", "state"), ("started_at", "started"), ("duration_seconds", "seconds"),
               ("error", "error"), ("worker", "worker")]  # fmt: skip
    emit(meta["history"], history, False, "attempts")


@app.command()
def cancel(task_id: TaskId, db: Db = None, as_json: Json = False) -> None:
    """Cancel a task that has not finished."""
    with session(db) as s:
        if not s.tasks.cancel_task(task_id):
            state = s.store.get_task(task_id).state
            raise ConflictError(f"task {task_id!r} already ended {state}; only unfinished tasks can be canceled")
        state = s.store.get_task(task_id).state
    done(f"task {task_id} is {state}", {"task_id": task_id, "state": state}, as_json)


@app.command()
def retry(task_id: TaskId, db: Db = None, as_json: Json = False) -> None:
    """Run a failed, timed-out, canceled or skipped task again with a fresh retry budget."""
    with session(db) as s:
        s.tasks.retry_task(task_id)
        state = s.store.get_task(task_id).state
    done(f"task {task_id} is {state} again", {"task_id": task_id, "state": state}, as_json)


@app.command()
def logs(
    task_id: TaskId,
    follow: Follow = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """The captured log lines of every attempt, oldest first (with --json: one JSON object per line)."""
    with session(db) as s:
        shown = 0
        while True:
            finished = s.store.get_task(task_id).state in FINISHED_STATES
            lines = s.tasks.get_task_logs(task_id)
            for line in lines[shown:]:
                if as_json:
                    typer.echo(json.dumps(line))
                else:
                    console().print(f"{line['ts']} [{line['level']}] (attempt {line['attempt']}) {line['message']}")
            shown = len(lines)
            if not follow or finished:
                return
            time.sleep(FOLLOW_POLL_SECONDS)
