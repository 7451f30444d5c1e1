"""`unified server` as a real process: it starts on a free port with a temp SQLite file and workflows folder,
prints an admin key, and runs a workflow created with the seed's curl-style requests."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import RunningServer, running_server

FLOWS = """
import unified


@unified.task(name="greet", max_retries=1)
def greet(name: str) -> str:
    return f"Hello, {name}!"


def shout(ctx) -> str:
    return ctx.upstream["greet"].upper()
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "acceptance_flows.py").write_text(textwrap.dedent(FLOWS))
    (flows / "broken.py").write_text("raise RuntimeError('this file is broken on purpose')\n")
    with running_server(tmp_path, flows) as running:
        yield running


def test_the_server_runs_a_workflow_made_with_curl_style_requests(server: RunningServer) -> None:
    headers = {"X-API-Key": server.admin_key, "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        # curl -X POST $URL/workflows -H "X-API-Key: $KEY" -H "Content-Type: application/json" \
        #      -d '{"name": "My Workflow", "description": "Sample workflow"}'
        created = http.post("/workflows", content='{"name": "My Workflow", "description": "Sample workflow"}')
        assert created.status_code == 201, created.text
        workflow_id = created.json()["workflow_id"]
        greet = {"task_id": "greet", "task": "greet", "args": ["World"]}
        shout = {"task_id": "shout", "task": "acceptance_flows:shout", "dependencies": ["greet"]}
        for task in (greet, shout):
            assert http.post(f"/workflows/{workflow_id}/tasks", json=task).status_code == 201
        started = http.post(f"/workflows/{workflow_id}/runs", json={"params": {"source": "acceptance"}})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 30
        while (run := http.get(f"/runs/{run_id}").json())["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run["state"] == "success", run
        assert run["results"] == {"greet": "Hello, World!", "shout": "HELLO, WORLD!"}
        folder = http.get("/workflows/folder").json()
        broken = [e for e in folder["errors"] if e["file"].endswith("broken.py")]
        assert broken and "this file is broken on purpose" in broken[0]["traceback"]
        assert http.get("/workflows", headers={"X-API-Key": "wrong"}).status_code == 401
    assert server.process.poll() is None, "the server is still up"
