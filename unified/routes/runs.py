"""``/runs``: list runs with filters, read one with every task's state, cancel, retry."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from unified.routes.deps import (
    MAX_PAGE,
    OPERATOR,
    VIEWER,
    Services,
    decode_position,
    encode_position,
    jsonable,
    safe_task,
    services,
    set_target,
    timestamp,
)
from unified.schemas import RunAction, RunDetail, RunOut, RunPage
from unified.store.records import RunRecord
from unified.task import RUN_STATES
from unified.utils import iso

router = APIRouter(prefix="/runs", tags=["runs"])

RunState = Annotated[str | None, Query(pattern=f"^({'|'.join(RUN_STATES)})$", description="run state")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Since = Annotated[datetime | None, Query(description="only runs created at or after this time (ISO-8601)")]


def run_out(run: RunRecord) -> dict[str, Any]:
    """A run record as the API shows it."""
    return {
        "run_id": run.run_id,
        "workflow_id": run.workflow_id,
        "version": run.version,
        "state": run.state,
        "trigger": run.trigger,
        "params": jsonable(run.params),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "metadata": jsonable(run.metadata),
    }


def runs_page(
    svc: Services, workflow_id: str | None, state: str | None, since: datetime | None, limit: int, cursor: str | None
) -> RunPage:
    """One page of runs, newest first (shared by ``/runs`` and ``/workflows/{id}/runs``); its cursor is the last run's
    place in that order, so runs started meanwhile do not push runs of this page onto the next."""
    items, next_cursor = runs_page_after(svc, workflow_id, state, limit, cursor, timestamp(since))
    return RunPage(items=[RunOut(**run_out(r)) for r in items], next_cursor=next_cursor)


def runs_page_after(
    svc: Services,
    workflow_id: str | None,
    state: str | None,
    limit: int,
    cursor: str | None,
    since: float | None = None,
) -> tuple[list[RunRecord], str | None]:
    """Up to ``limit`` runs, newest first, after the run ``cursor`` names, and the cursor of the next page (the API's
    and the web UI's run lists)."""
    found = svc.store.list_runs(workflow_id, state, limit + 1, since=since, before=decode_position(cursor))
    items = found[:limit]
    return items, encode_position(items[-1].created_at, items[-1].seq) if len(found) > limit else None


@router.get("", response_model=RunPage, dependencies=[VIEWER], summary="List runs, newest first")
def list_runs(
    request: Request,
    workflow_id: str | None = None,
    state: RunState = None,
    since: Since = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> RunPage:
    """Runs, newest first, filtered by workflow, state and creation time; paginated."""
    return runs_page(services(request), workflow_id, state, since, limit, cursor)


@router.get("/{run_id}", response_model=RunDetail, dependencies=[VIEWER], summary="A run with its tasks")
def get_run(request: Request, run_id: str) -> RunDetail:
    """A run with every task's state, attempts and result."""
    run = asdict(services(request).workflow_manager.get_run(run_id))
    run["tasks"] = {k: safe_task(v) for k, v in run["tasks"].items()}
    run["results"] = jsonable(run["results"])
    run["params"], run["metadata"] = jsonable(run["params"]), jsonable(run["metadata"])
    return RunDetail(**run)


def _act(request: Request, run_id: str, count: int) -> RunAction:
    set_target(request, run_id)
    return RunAction(run_id=run_id, state=services(request).store.get_run(run_id).state, count=count)


@router.post("/{run_id}/cancel", response_model=RunAction, dependencies=[OPERATOR], summary="Cancel a run")
def cancel_run(request: Request, run_id: str) -> RunAction:
    """Cancel every unfinished task of the run; ``count`` says how many were canceled (409 once it ended)."""
    return _act(request, run_id, services(request).workflow_manager.cancel_run(run_id))


@router.post("/{run_id}/retry", response_model=RunAction, dependencies=[OPERATOR], summary="Retry a run")
def retry_run(request: Request, run_id: str) -> RunAction:
    """Re-run the failed, timed-out and canceled tasks of the run and what they skipped (409 if none)."""
    return _act(request, run_id, services(request).workflow_manager.retry_run(run_id))
