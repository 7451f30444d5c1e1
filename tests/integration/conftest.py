"""Fixtures for the REST API tests: an app on the memory store (or a temp SQLite file) with no worker threads."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import tests.helpers.api_tasks  # noqa: F401  (registers the tasks the API tests queue)
from unified.api import create_app
from unified.routes.deps import Services
from unified.server import ServerSettings
from unified.utils import FakeClock

FLOWS = """
import functools

import unified
from unified.task import Task
from unified.workflow.workflow import Workflow


@unified.task(max_retries=2)
def double(x: int) -> int:
    return 2 * x


def total(ctx) -> int:
    return sum(ctx.upstream.values())


@functools.cache
def cached_square(x: int) -> int:
    return x * x


pipeline = Workflow("pipeline", "double two numbers and sum them", [
    Task(task_id="a", func=double, args=(1,)),
    Task(task_id="b", func=double, args=(2,)),
    Task(task_id="sum", func=total, dependencies=["a", "b"]),
])
"""


@dataclass
class Api:
    """A started app with its test client, services, clock and an admin key."""

    app: FastAPI
    client: TestClient
    services: Services
    clock: FakeClock
    admin_key: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        """Headers carrying a key of ``role`` (the bootstrap key for admin, a new key otherwise)."""
        if role == "admin":
            return {"X-API-Key": self.admin_key}
        return {"X-API-Key": self.services.keys.create(f"{role}-key", role)[1]}

    def drain(self) -> int:
        """Run every ready task in this thread; returns how many ran."""
        return self.services.task_manager.run_until_idle()

    def call(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> Any:
        """Send a request with a key of ``role`` and return the response."""
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="session")
def flows_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflows folder with one module, ``api_flows.py``, defining the ``pipeline`` workflow."""
    folder = tmp_path_factory.mktemp("flows")
    (folder / "api_flows.py").write_text(textwrap.dedent(FLOWS))
    return folder


def start_api(settings: ServerSettings) -> Iterator[Api]:
    """Start an app with ``settings`` and yield it as an Api."""
    clock = FakeClock()
    app = create_app(settings, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        server = app.state.server
        yield Api(app, client, app.state.services, clock, server.created_admin_key)


@pytest.fixture
def api(flows_folder: Path) -> Iterator[Api]:
    """An app on the memory store, the test workflows folder loaded, no worker threads."""
    settings = ServerSettings(
        database_url="memory://", workers=0, announce=False, workflows_dir=str(flows_folder), max_body_bytes=64 * 1024
    )
    yield from start_api(settings)


@pytest.fixture
def sqlite_api(flows_folder: Path, tmp_path: Path) -> Iterator[Api]:
    """The same app on a temp SQLite file."""
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}", workers=0, announce=False, workflows_dir=str(flows_folder)
    )
    yield from start_api(settings)
