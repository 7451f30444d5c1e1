"""``unified workflows list|show|versions|graph``: the workflows in the database, their versions and task graphs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from unified.graph import validate_graph
from unified.ui.commands.common import Db, Json, console, emit, emit_one, fail, find_workflow, print_json, session

app = typer.Typer(help="Inspect workflows: list, show, versions, graph.", no_args_is_help=True)

Workflow = Annotated[str, typer.Argument(help="A workflow id or name.")]


def task_rows(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task specs as table rows: id, what runs, dependencies, retries, timeout."""
    return [
        {
            "task_id": s["task_id"],
            "runs": s.get("func") or f"$ {s.get('command')}",
            "dependencies": ", ".join(s.get("dependencies", ())) or None,
            "max_retries": s.get("max_retries", 0),
            "timeout": s.get("timeout"),
            "priority": s.get("priority", 0),
        }
        for s in specs
    ]


TASK_COLUMNS = [
    ("task_id", "task"),
    ("runs", "runs"),
    ("dependencies", "after"),
    ("max_retries", "retries"),
    ("timeout", "timeout s"),
    ("priority", "priority"),
]


@app.command("list")
def list_workflows(db: Db = None, as_json: Json = False) -> None:
    """Every workflow, oldest first."""
    with session(db) as s:
        found = s.workflows.list_workflows()
    rows = [{**w, "task_count": len(w["tasks"])} for w in found]
    columns = [
        ("workflow_id", "id"),
        ("name", "name"),
        ("current_version", "version"),
        ("task_count", "tasks"),
        ("updated_at", "updated"),
        ("description", "description"),
    ]
    emit(rows, columns, as_json, "workflows")


@app.command()
def show(workflow: Workflow, db: Db = None, as_json: Json = False) -> None:
    """A workflow with its draft tasks."""
    with session(db) as s:
        found = find_workflow(s.workflows, workflow)
    if as_json:
        print_json(found)
        return
    fields = [("workflow_id", "id"), ("name", "name"), ("description", "description")]
    emit_one(found, [*fields, ("current_version", "version"), ("updated_at", "updated")], False)
    emit(task_rows(found["tasks"]), TASK_COLUMNS, False, "tasks")


@app.command()
def versions(workflow: Workflow, db: Db = None, as_json: Json = False) -> None:
    """The frozen versions of a workflow (a run freezes the draft when it changed)."""
    with session(db) as s:
        found = s.workflows.list_versions(find_workflow(s.workflows, workflow)["workflow_id"])
    rows = [{**v, "task_count": len(v["tasks"])} for v in found]
    emit(rows, [("number", "version"), ("hash", "hash"), ("created_at", "created"), ("task_count", "tasks")], as_json)


def graph_levels(specs: list[dict[str, Any]]) -> list[list[str]]:
    """Task ids by level: level 0 depends on nothing, level n on something of level n-1 at most."""
    deps = {s["task_id"]: list(s.get("dependencies", ())) for s in specs}
    level: dict[str, int] = {}
    for task_id in validate_graph(deps, scope="workflow"):
        level[task_id] = 1 + max((level[d] for d in deps[task_id]), default=-1)
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for task_id, n in level.items():
        levels[n].append(task_id)
    return levels


@app.command()
def graph(
    workflow: Workflow,
    version: Annotated[int | None, typer.Option(min=1, help="A frozen version (default: the draft).")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """The task graph as text: one line per task, by level, with what it waits for."""
    with session(db) as s:
        record = find_workflow(s.workflows, workflow)
        specs = record["tasks"]
        if version is not None:
            chosen = [v for v in s.workflows.list_versions(record["workflow_id"]) if v["number"] == version]
            if not chosen:
                raise fail(f"workflow {record['name']!r} has no version {version}: `unified workflows versions`", 3)
            specs = chosen[0]["tasks"]
    levels = graph_levels(specs)
    deps = {s["task_id"]: list(s.get("dependencies", ())) for s in specs}
    if as_json:
        edges = [[d, t] for t, ds in deps.items() for d in ds]
        print_json({"workflow": record["name"], "levels": levels, "edges": edges})
        return
    console().print(f"{record['name']} ({len(specs)} tasks)")
    for n, ids in enumerate(levels):
        for task_id in ids:
            after = f"  <- {', '.join(deps[task_id])}" if deps[task_id] else ""
            console().print(f"{'    ' * n}{'└─ ' if n else ''}{task_id}{after}")
