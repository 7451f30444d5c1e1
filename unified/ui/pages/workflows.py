"""Workflow pages: the list (last run, schedule, next fire) and one workflow (graph, versions and diff, runs, Run)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from fastapi import Request, Response

from unified.auth import Role
from unified.errors import ValidationError
from unified.routes.deps import refuse_unstorable
from unified.routes.runs import runs_page_after
from unified.routes.workflows import refuse_shell_unless_allowed
from unified.schemas import RunIn
from unified.store.records import TaskRecord
from unified.ui.pages.base import (
    PAGE_SIZE,
    RUN_STATES,
    STATES,
    Form,
    Page,
    Ui,
    checked,
    clamp,
    one_of,
    page_router,
    pretty,
    redirect,
    render,
    url_part,
)

router = page_router()


def schedules_by_workflow(ui: Ui) -> dict[str, list[dict[str, Any]]]:
    """Every schedule that starts a workflow, by workflow id."""
    found: dict[str, list[dict[str, Any]]] = {}
    for schedule in ui.svc.workflow_manager.list_schedules():
        if schedule["target_type"] == "workflow":
            found.setdefault(schedule["target"].get("workflow_id"), []).append(schedule)
    return found


def graph_nodes(specs: list[dict[str, Any]], states: dict[str, str], link: str | None = None) -> list[dict[str, Any]]:
    """The nodes the graph script draws: id, state, dependencies and the page a node opens."""
    return [
        {
            "id": s["task_id"],
            "label": s.get("name") or s["task_id"],
            "state": states.get(s["task_id"], "none"),
            "deps": list(s.get("dependencies", ())),
            "href": f"{link}{s['task_id']}" if link else None,
        }
        for s in specs
    ]


def graph_data(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """What the graph script reads: the nodes, the layout direction and each state's icon."""
    return {"nodes": nodes, "direction": "LR", "icons": STATES}


def run_graph_nodes(tasks: list[TaskRecord]) -> list[dict[str, Any]]:
    """Graph nodes for the tasks of a run, each opening its task page."""
    return [
        {
            "id": t.task_id,
            "label": t.name or t.task_id,
            "state": t.state,
            "deps": list(t.spec.get("dependencies", ())),
            "href": f"/ui/tasks/{url_part(t.id)}",
        }
        for t in tasks
    ]


def diff_rows(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Side-by-side rows of two versions' task specs (as indented JSON): tag, left line, right line."""

    def lines(specs: list[dict[str, Any]]) -> list[str]:
        clean = [{k: v for k, v in s.items() if k != "ref"} for s in specs]
        return pretty(clean).splitlines()

    a, b = lines(left), lines(right)
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal" and i2 - i1 > 6:  # fold long unchanged stretches
            rows += [{"tag": "equal", "left": a[i], "right": b[j1 + i - i1]} for i in range(i1, i1 + 3)]
            rows.append({"tag": "fold", "left": f"… {i2 - i1 - 6} unchanged lines", "right": ""})
            rows += [{"tag": "equal", "left": a[i], "right": b[j1 + i - i1]} for i in range(i2 - 3, i2)]
            continue
        for n in range(max(i2 - i1, j2 - j1)):
            rows.append(
                {
                    "tag": tag,
                    "left": a[i1 + n] if i1 + n < i2 else None,
                    "right": b[j1 + n] if j1 + n < j2 else None,
                }
            )
    return rows


@router.get("/ui/workflows")
def workflows_page(ui: Page, q: str = "", offset: str | None = None) -> Response:
    """Workflows, oldest first, filtered by name; each with its last run (in the summaries), schedules, next fire."""
    ui.require(Role.VIEWER)
    start = clamp(offset, 0, 0, 10**9)
    store = ui.svc.store
    every = [workflow_id for workflow_id, name in store.workflow_names().items() if q.lower() in name.lower()]
    schedules = schedules_by_workflow(ui)
    rows = []
    for workflow in store.workflow_summaries(every[start : start + PAGE_SIZE]):  # one deleted meanwhile is left out
        own = schedules.get(workflow.workflow_id, [])
        fires = sorted(s["next_fire_time"] for s in own if s["next_fire_time"] and not s["paused"])
        rows.append({"w": workflow, "schedules": own, "next": fires[:1]})
    return render(
        ui,
        "workflows.html",
        rows=rows,
        q=q,
        offset=start,
        total=len(every),
        page_size=PAGE_SIZE,
        folder_errors=ui.svc.folder.report.errors,
    )


@router.get("/ui/workflows/{workflow_id}")
def workflow_page(
    workflow_id: str,
    ui: Page,
    a: str | None = None,
    b: str | None = None,
    state: str | None = None,
    after: str | None = None,
) -> Response:
    """One workflow: its graph coloured by the latest run, versions with a diff, runs and the Run form."""
    ui.require(Role.VIEWER)
    store = ui.svc.store
    workflow = store.get_workflow(workflow_id)
    versions = store.list_versions(workflow_id)
    latest = store.list_runs(workflow_id, limit=1)
    states = {t.task_id: t.state for t in store.run_tasks(latest[0].run_id)} if latest else {}
    specs = workflow.tasks or (versions[-1].tasks if versions else [])
    numbers = [v.number for v in versions]
    left = clamp(a, numbers[-2] if len(numbers) > 1 else 0, 0, 10**6)
    right = clamp(b, numbers[-1] if numbers else 0, 0, 10**6)
    by_number = {v.number: v for v in versions}
    same = left == right or left not in by_number or right not in by_number
    diff = [] if same else diff_rows(by_number[left].tasks, by_number[right].tasks)
    run_state = one_of(state, RUN_STATES)
    runs, next_page = runs_page_after(ui.svc, workflow_id, run_state, PAGE_SIZE, after or None)
    return render(
        ui,
        "workflow.html",
        workflow=workflow,
        versions=versions,
        latest=latest[0] if latest else None,
        graph=graph_data(graph_nodes(specs, states)),
        left=left,
        right=right,
        diff=diff,
        runs=runs,
        next_page=next_page,
        paged=bool(after),
        run_state=run_state,
        schedules=schedules_by_workflow(ui).get(workflow_id, []),
    )


def parse_params(text: str) -> dict[str, Any]:
    """The Run form's params: a JSON object, or empty; refused as the REST API refuses them (nested too deep, a lone
    surrogate, a number too long to read)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"params are not valid JSON ({exc.msg} at line {exc.lineno}): fix them and retry"
        ) from None
    except (ValueError, RecursionError) as exc:  # a number of over 4,300 digits; brackets too deep for the parser
        reason = "they nest too deep" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ValidationError(f"params cannot be read ({reason}): fix them and retry") from None
    if not isinstance(value, dict):
        raise ValidationError('params must be a JSON object, like {"day": "2026-01-31"}')
    refuse_unstorable(value, "params")
    return value


def run_request(form: dict[str, str]) -> RunIn:
    """The Run form as the REST API's request: its params and version (empty: the current draft), checked alike."""
    return checked(RunIn, {"params": parse_params(form.get("params", "")), "version": form.get("version") or None})


@router.post("/ui/workflows/{workflow_id}/run")
def start_run(request: Request, workflow_id: str, ui: Page, form: Form) -> Response:
    """Start a run with the form's params (and version), then open its page."""
    principal = ui.require(Role.OPERATOR)
    body = run_request(form)
    refuse_shell_unless_allowed(ui.svc, workflow_id, body.version)
    run_id = ui.svc.workflow_manager.start_workflow(
        workflow_id, body.params, body.version, trigger="manual", metadata={"started_by": principal.name, "from": "web"}
    )
    request.state.audit_target = run_id
    return redirect(ui, f"/ui/runs/{run_id}", "run started")
