"""`unified server` start-up: the workflows folder is imported before the workers claim anything; what the start
builds and imports before the server answers."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.server import free_port
from unified.server import Server, ServerSettings
from unified.task_manager import TaskManager


def test_tasks_queued_before_a_restart_find_the_folders_code_when_the_workers_start(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "start_order_flow.py").write_text("def job() -> str:\n    return 'ran'\n")
    url = f"sqlite:///{tmp_path / 'start.db'}"
    sys.path.insert(0, str(folder))
    try:  # queued by an earlier server process that had the folder loaded
        with TaskManager(store=url, max_workers=0, run_scheduler=False) as before:
            task_ids = [before.queue_task("start_order_flow:job") for _ in range(3)]
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("start_order_flow", None)
    server = Server(ServerSettings(database_url=url, workflows_dir=str(folder), workers=2, announce=False))
    services = server.start()
    try:
        done = services.task_manager.wait_all(task_ids, timeout=20)
        assert [(m["state"], m["result"]) for m in done] == [("success", "ran")] * 3
    finally:
        server.stop()
        sys.path.remove(str(folder))
        sys.modules.pop("start_order_flow", None)


def test_routers_build_no_error_responses_of_their_own_and_the_app_documents_them(tmp_path: Path) -> None:
    from fastapi.routing import APIRoute
    from fastapi.testclient import TestClient

    from unified.api import create_app
    from unified.routes import alerts, api_keys, audit, metrics, runs, schedules, tasks, workflows
    from unified.routes.deps import ERROR_RESPONSES

    # declared on an APIRouter, each of its routes builds a serializer per error status at import (~300 in all)
    for module in (alerts, api_keys, audit, metrics, runs, schedules, tasks, workflows):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            assert not set(route.response_fields) & set(ERROR_RESPONSES), f"{route.path} built its error responses"
    settings = ServerSettings(database_url=f"sqlite:///{tmp_path / 'docs.db'}", workers=0, announce=False)
    with TestClient(create_app(settings)) as client:
        paths = client.get("/openapi.json").json()["paths"]
    documented = {
        (path, method): set(operation["responses"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    errors = {str(status) for status in ERROR_RESPONSES}
    assert documented[("/health", "get")] == {"200"}
    assert len(documented) > 30
    for (path, method), statuses in documented.items():
        assert path == "/health" or statuses >= errors, f"{method} {path} documents {sorted(statuses)}"


def test_the_server_command_loads_neither_the_console_nor_the_page_libraries() -> None:
    # rich: only commands that print; jinja2: the first page shown; cron_descriptor: the schedules page
    code = (
        "import sys, unified.ui.ui, unified.api, unified.server\n"
        "print(','.join(m for m in ('rich', 'jinja2', 'cron_descriptor') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "", f"`unified server` loads {out.stdout.strip()} before it answers"


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Gives back to the collector what a server command run in this process froze."""
    yield
    gc.unfreeze()
    gc.enable()


def test_the_server_command_freezes_what_its_start_made_and_collects_again_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    import unified.logger
    import unified.server
    from unified.ui.ui import app

    seen: dict[str, int | bool] = {}

    def serve(*_args: object, **_options: object) -> None:
        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())

    monkeypatch.setattr(unified.server, "serve", serve)
    monkeypatch.setattr(unified.logger, "configure_logging", lambda level: None)  # this process's logs stay as they are
    db = f"sqlite:///{tmp_path / 'frozen.db'}"
    result = CliRunner().invoke(app, ["server", "--db", db, "--port", str(free_port()), "--log-level", "warning"])
    assert result.exit_code == 0, result.output
    assert seen["enabled"] is True
    assert int(seen["frozen"]) > 10_000  # the app, its routes and every module imported so far

    gc.unfreeze()
    refused = CliRunner().invoke(app, ["server", "--db", db, "--workflows", str(tmp_path / "nowhere")])
    assert refused.exit_code == 2
    assert gc.isenabled() and gc.get_freeze_count() == 0  # a start that fails freezes nothing
