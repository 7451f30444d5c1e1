"""``unified runs list|show|cancel|retry``: runs of workflows, newest first, with every task's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import typer

from unified.store.records import RunRecord
from unified.task import RUN_STATES
from unified.ui.commands.common import (
    Db,
    Json,
    Limit,
    Session,
    check_choice,
    done,
    emit,
    emit_one,
    find_workflow,
    print_json,
    session,
)
from unified.utils import iso

app = typer.Typer(help="Inspect and steer runs: list, show, cancel, retry.", no_args_is_help=True)

RunId = Annotated[str, typer.Argument(help="A run id (`unified runs list` shows them).")]

TASK_COLUMNS = [
    ("task_id", "task"),
    ("state", "state"),
    ("attempts", "attempts"),
    ("duration_seconds", "seconds"),
    ("problem", "error / reason"),
]


def task_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task metadata as table rows, with the error or skip reason in one column."""
    rows = []
    for meta in tasks:
        error = meta.get("error")
        problem = f"{error['type']}: {error['message']}" if error else meta.get("reason")
        rows.append({**meta, "problem": problem})
    return rows


def run_row(run: RunRecord, progress: dict[str, int], names: dict[str, str]) -> dict[str, Any]:
    """A run as a list row: ids, workflow name, state, how many of its tasks succeeded, times."""
    total = sum(progress.values())
    return {
        "run_id": run.run_id,
        "workflow_id": run.workflow_id,
        "workflow": names.get(run.workflow_id or "", run.workflow_id),
        "version": run.version,
        "state": run.state,
        "trigger": run.trigger,
        "tasks_done": f"{progress.get('success', 0)}/{total}",
        "params": run.params,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
    }


@app.command("list")
def list_runs(
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow (id or name).")] = None,
    state: Annotated[str | None, typer.Option(help=f"Only runs in this state: {', '.join(RUN_STATES)}.")] = None,
    limit: Limit = 20,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Runs, newest first."""
    check_choice(state, RUN_STATES, "--state")
    with session(db) as s:
        names = s.store.workflow_names()
        workflow_id = find_workflow(s.workflows, workflow)["workflow_id"] if workflow else None
        rows = [run_row(r, s.store.run_progress(r.run_id), names) for r in s.store.list_runs(workflow_id, state, limit)]
    columns = [
        ("run_id", "run"),
        ("workflow", "workflow"),
        ("version", "v"),
        ("state", "state"),
        ("tasks_done", "succeeded"),
        ("trigger", "trigger"),
        ("started_at", "started"),
        ("finished_at", "finished"),
    ]
    emit(rows, columns, as_json, "runs")


@app.command()
def show(run_id: RunId, db: Db = None, as_json: Json = False) -> None:
    """A run with every task's state, attempts and error."""
    with session(db) as s:
        run = asdict(s.workflows.get_run(run_id))
    if as_json:
        print_json(run)
        return
    fields = [("run_id", "run"), ("workflow_id", "workflow"), ("version", "version"), ("state", "state")]
    emit_one(run, [*fields, ("trigger", "trigger"), ("params", "params"), ("started_at", "started"),
                   ("finished_at", "finished")], False)  # fmt: skip
    emit(task_rows(list(run["tasks"].values())), TASK_COLUMNS, False, "tasks")


def _act(db: str | None, run_id: str, as_json: bool, action: Callable[[Session], int], what: str) -> None:
    with session(db) as s:
        count = action(s)
        state = s.store.get_run(run_id).state
    record = {"run_id": run_id, "state": state, "count": count}
    done(f"run {run_id}: {count} task(s) {what}; the run is {state}", record, as_json)


@app.command()
def cancel(run_id: RunId, db: Db = None, as_json: Json = False) -> None:
    """Cancel every unfinished task of a run."""
    _act(db, run_id, as_json, lambda s: s.workflows.cancel_run(run_id), "canceled")


@app.command()
def retry(run_id: RunId, db: Db = None, as_json: Json = False) -> None:
    """Run a run's failed, timed-out and canceled tasks again, with what they skipped."""
    _act(db, run_id, as_json, lambda s: s.workflows.retry_run(run_id), "queued again")
