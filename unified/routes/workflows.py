"""``/workflows``: define workflows and their tasks, read their versions, start and list their runs, reload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from unified.auth import Principal
from unified.errors import ConflictError, NotFoundError, PermissionDeniedError, name_taken
from unified.graph import validate_graph
from unified.routes.deps import (
    ADMIN,
    MAX_PAGE,
    OPERATOR,
    VIEWER,
    Services,
    build_task,
    page_of,
    services,
    set_target,
)
from unified.routes.runs import RunState, Since, runs_page
from unified.schemas import (
    FolderReport,
    RunAccepted,
    RunIn,
    RunPage,
    TaskIn,
    VersionOut,
    WorkflowIn,
    WorkflowOut,
    WorkflowPage,
    WorkflowTaskAdded,
)
from unified.workflow.workflow import Workflow
from unified.workflows_folder import load_workflows

router = APIRouter(prefix="/workflows", tags=["workflows"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def folder_report(request: Request) -> FolderReport:
    """The last load of the workflows folder, with the registered task names."""
    svc = services(request)
    report = svc.folder.report
    return FolderReport(
        folder=report.folder,
        modules=report.modules,
        workflows=[w.name for w in report.workflows],
        errors=[{"file": e.file, "error": e.error, "traceback": e.traceback} for e in report.errors],
        registered_tasks=svc.registry.names(),
    )


@router.get("", response_model=WorkflowPage, dependencies=[VIEWER], summary="List workflows")
def list_workflows(request: Request, limit: Limit = 50, cursor: str | None = None) -> WorkflowPage:
    """Workflows, oldest first; paginated (only the page's workflows are read with their tasks)."""
    svc = services(request)
    ids, next_cursor = page_of(list(svc.store.workflow_names()), cursor, limit)
    return WorkflowPage(items=svc.workflow_manager.get_workflows(ids), next_cursor=next_cursor)


@router.post("", response_model=WorkflowOut, status_code=status.HTTP_201_CREATED, summary="Create a workflow")
def create_workflow(request: Request, body: WorkflowIn, principal: Principal = ADMIN) -> WorkflowOut:
    """Create a workflow from a name and description, optionally with tasks (checked for cycles: 409)."""
    svc = services(request)
    manager = svc.workflow_manager
    if (same := svc.store.find_workflow(body.name)) is not None:  # before its tasks are built and checked
        raise name_taken(body.name, same.workflow_id)
    tasks = {}
    for n, spec in enumerate(body.tasks):
        task = build_task(spec, svc, principal)
        task.task_id = task.task_id or f"{task.name}-{n + 1}"
        if task.task_id in tasks:
            raise ConflictError(f"task id {task.task_id!r} appears twice in the workflow: give each task its own id")
        tasks[task.task_id] = task
    order = validate_graph({k: t.dependencies for k, t in tasks.items()}, scope=f"workflow {body.name!r}")
    workflow_id = manager.register(Workflow(body.name, body.description, [tasks[k] for k in order]))
    set_target(request, workflow_id)
    return WorkflowOut(**manager.get_workflow(workflow_id))


@router.get("/folder", response_model=FolderReport, dependencies=[VIEWER], summary="The workflows folder")
def get_folder(request: Request) -> FolderReport:
    """What the last load of the workflows folder found: modules, workflows, and files that failed with tracebacks."""
    return folder_report(request)


@router.post("/reload", response_model=FolderReport, dependencies=[ADMIN], summary="Reload the workflows folder")
def reload_folder(request: Request) -> FolderReport:
    """Import the workflows folder again and register its workflows; broken files are reported, not fatal."""
    svc = services(request)
    set_target(request, str(svc.folder.folder))
    load_workflows(svc.folder, svc.workflow_manager)
    return folder_report(request)


@router.get("/{workflow_id}", response_model=WorkflowOut, dependencies=[VIEWER], summary="A workflow")
def get_workflow(request: Request, workflow_id: str) -> WorkflowOut:
    """A workflow with its draft task specs."""
    return WorkflowOut(**services(request).workflow_manager.get_workflow(workflow_id))


@router.delete(
    "/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[ADMIN], summary="Delete a workflow"
)
def delete_workflow(request: Request, workflow_id: str) -> Response:
    """Remove a workflow, its versions and its schedules; its runs stay as history."""
    manager = services(request).workflow_manager
    manager.get_workflow(workflow_id)
    manager.delete_workflow(workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{workflow_id}/tasks",
    response_model=WorkflowTaskAdded,
    status_code=status.HTTP_201_CREATED,
    summary="Add a task to a workflow",
)
def add_task(request: Request, workflow_id: str, body: TaskIn, principal: Principal = ADMIN) -> WorkflowTaskAdded:
    """Add a task to the workflow's draft; duplicate ids and unknown dependencies are conflicts (409)."""
    svc = services(request)
    svc.workflow_manager.get_workflow(workflow_id)
    task_id = svc.workflow_manager.add_task_to_workflow(workflow_id, build_task(body, svc, principal))
    set_target(request, f"{workflow_id}/{task_id}")
    return WorkflowTaskAdded(workflow_id=workflow_id, task_id=task_id)


@router.delete(
    "/{workflow_id}/tasks/{task_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[ADMIN],
    summary="Remove a task from a workflow",
)
def remove_task(request: Request, workflow_id: str, task_id: str) -> Response:
    """Remove a task from the draft; refused (409) while other tasks depend on it."""
    services(request).workflow_manager.remove_task_from_workflow(workflow_id, task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{workflow_id}/versions", response_model=list[VersionOut], dependencies=[VIEWER], summary="List versions")
def list_versions(request: Request, workflow_id: str) -> list[VersionOut]:
    """Every frozen version of the workflow, by number."""
    return [VersionOut(**v) for v in services(request).workflow_manager.list_versions(workflow_id)]


@router.get("/{workflow_id}/versions/{number}", response_model=VersionOut, dependencies=[VIEWER], summary="One version")
def get_version(request: Request, workflow_id: str, number: int) -> VersionOut:
    """One frozen version of the workflow."""
    for version in services(request).workflow_manager.list_versions(workflow_id):
        if version["number"] == number:
            return VersionOut(**version)
    raise NotFoundError(f"workflow {workflow_id!r} has no version {number}: list its versions to see them")


@router.post(
    "/{workflow_id}/runs",
    response_model=RunAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a run",
)
def start_run(
    request: Request, workflow_id: str, body: RunIn | None = None, principal: Principal = OPERATOR
) -> RunAccepted:
    """Start a run with params (and optionally an earlier version); answers at once with its run_id. No body: the
    current version with no params."""
    svc = services(request)
    body = body or RunIn()
    refuse_shell_unless_allowed(svc, workflow_id, body.version)
    run_id = svc.workflow_manager.start_workflow(
        workflow_id, body.params, body.version, trigger="api", metadata={"started_by": principal.name}
    )
    set_target(request, run_id)
    run = svc.store.get_run(run_id)
    return RunAccepted(run_id=run_id, workflow_id=workflow_id, version=run.version, state=run.state)


def refuse_shell_unless_allowed(svc: Services, workflow_id: str, version: int | None) -> None:
    """A PermissionDeniedError if the workflow (its draft, or ``version``) holds a shell command and the server runs
    without shell tasks: stored while they were on, they stay off until it is started with them again."""
    if svc.allow_shell:
        return
    specs = (svc.store.get_workflow(workflow_id) if version is None
             else svc.store.get_version(workflow_id, version)).tasks  # fmt: skip
    if shell := next((s["task_id"] for s in specs if s.get("command") is not None), None):
        raise PermissionDeniedError(
            f"task {shell!r} of this workflow is a shell command and shell tasks are off: an admin can start "
            "the server with --allow-shell"
        )


@router.get("/{workflow_id}/runs", response_model=RunPage, dependencies=[VIEWER], summary="List a workflow's runs")
def list_workflow_runs(
    request: Request,
    workflow_id: str,
    state: RunState = None,
    since: Since = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> RunPage:
    """Runs of this workflow, newest first; paginated."""
    svc = services(request)
    svc.workflow_manager.get_workflow(workflow_id)
    return runs_page(svc, workflow_id, state, since, limit, cursor)
