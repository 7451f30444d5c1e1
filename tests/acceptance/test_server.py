"""`unified server` as a real process: it starts on a free port with a temp SQLite file and workflows folder,
prints an admin key, and runs a workflow created with the seed's curl-style requests."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY_LINE = re.compile(r"admin API key \(shown once, keep it\): (\S+)")

FLOWS = """
import unified


@unified.task(name="greet", max_retries=1)
def greet(name: str) -> str:
    return f"Hello, {name}!"


def shout(ctx) -> str:
    return ctx.upstream["greet"].upper()
"""


@dataclass
class RunningServer:
    """A server process, its base URL and the admin key it printed."""

    process: subprocess.Popen[str]
    url: str
    admin_key: str
    output: list[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command() -> list[str]:
    """The `unified` console script next to this Python, else the module form."""
    script = Path(sys.executable).parent / "unified"
    return [str(script)] if script.exists() else [sys.executable, "-m", "unified.ui.ui"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "acceptance_flows.py").write_text(textwrap.dedent(FLOWS))
    (flows / "broken.py").write_text("raise RuntimeError('this file is broken on purpose')\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIFIED_")}
    env["PYTHONPATH"] = str(ROOT)
    db = f"sqlite:///{tmp_path / 'unified.db'}"
    args = [*command(), "server", "--port", str(port), "--db", db, "--workflows", str(flows), "--workers", "2"]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    key = None
    deadline = time.monotonic() + 30
    try:
        while key is None and time.monotonic() < deadline and process.poll() is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            output.append(line)
            if match := KEY_LINE.search(line):
                key = match.group(1)
        assert key, "the server printed no admin key within 30 s:\n" + "".join(output)
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("/health did not answer within 30 s:\n" + "".join(output))
        yield RunningServer(process, url, key, output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()  # type: ignore[union-attr]


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
