"""The layers of DESIGN.md import downward only; heavy libraries stay where they belong."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "unified"

LAYERS: dict[str, int] = {
    "unified": 0,
    "unified.errors": 0,
    "unified.utils": 0,
    "unified.config": 0,
    "unified.task": 1,
    "unified.functions": 1,
    "unified.registration": 1,
    "unified.graph": 1,
    "unified.queue": 1,
    "unified.events": 1,
    "unified.cron": 1,
    "unified.logger": 1,
    "unified.gc_pace": 1,
    "unified.tracebacks": 1,
    "unified.store": 2,
    "unified.executor": 2,
    "unified.executor_child": 2,
    "unified.lifeline": 2,
    "unified.engine": 3,
    "unified.engine_batch": 3,
    "unified.engine_events": 3,
    "unified.engine_submit": 3,
    "unified.interventions": 3,
    "unified.outcome_plan": 3,
    "unified.task_records": 3,
    "unified.scheduler": 4,
    "unified.worker": 4,
    "unified.worker_parking": 4,
    "unified.worker_leases": 4,
    "unified.worker_attempt": 4,
    "unified.lease_guard": 4,
    "unified.alerts": 4,
    "unified.alert_rules": 4,
    "unified.sla": 4,
    "unified.channels": 4,
    "unified.task_manager": 5,
    "unified.workflow": 5,
    "unified.testing": 5,
    "unified.registry": 5,
    "unified.workflows_folder": 5,
    "unified.auth": 6,
    "unified.auth_throttle": 6,
    "unified.schemas": 6,
    "unified.routes": 6,
    "unified.metrics": 6,
    "unified.ui.web": 6,
    "unified.ui.pages": 6,
    "unified.api": 7,
    "unified.ui": 7,
    "unified.server": 7,
    "unified.service": 7,
    "unified.client": 7,
}

# Task.run() is a convenience that hands the task to the executor one layer up; the import is deferred to
# call time so that importing unified.task stays light. It is the only exception.
ALLOWED_UPWARD = {("unified.task", "unified.executor")}

WEB_AND_CLI = ("fastapi", "starlette", "jinja2", "typer", "rich", "click", "uvicorn")
SQL = ("sqlalchemy", "psycopg", "alembic", "sqlite3")


def layer_of(module: str) -> int:
    """The layer of ``module``: its longest prefix in LAYERS."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS:
            return LAYERS[name]
    raise AssertionError(f"{module} has no layer: add it to LAYERS in this test and to docs/architecture.md")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names if node.module == "unified"]
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward_only(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    for imported in imports_of(path):
        top = imported.split(".")[0]
        if top == "unified" and imported != "unified":
            target = layer_of(imported)
            if (module, ".".join(imported.split(".")[:2])) in ALLOWED_UPWARD:
                continue
            assert target <= own, f"{module} (layer {own}) imports {imported} (layer {target})"
        if top in WEB_AND_CLI:
            assert own >= 6, f"{module} (layer {own}) imports the web/CLI library {top}"
        if top in SQL:
            assert module.startswith("unified.store"), f"{module} imports {top}: SQL lives only in unified.store"


def test_light_imports() -> None:
    code = (
        "import sys, unified, unified.task, unified.task_manager, unified.workflow.workflow\n"
        "heavy = ('sqlalchemy', 'fastapi', 'alembic', 'psycopg', 'jinja2', 'httpx', 'rich', 'smtplib', 'asyncio')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "", f"importing the library loaded {out.stdout.strip()}"


def test_public_surface() -> None:
    import unified

    assert set(unified.__all__) >= {"Task", "TaskManager", "Workflow", "WorkflowManager", "TaskState", "UnifiedError"}
    for name in unified.__all__:
        assert getattr(unified, name) is not None
