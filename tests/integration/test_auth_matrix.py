"""The role matrix: every route of the app x {no key, wrong key, revoked key, expired key, viewer, operator, admin},
and every route for a client throttled after too many failed authentications.

The expected role of each route is written here by hand; the test fails when the app has a route this table
does not name (or the table names one the app lacks), so a new route cannot escape the matrix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import BaseRoute, Route

from tests.integration.conftest import Api, start_api
from unified.auth import Role
from unified.server import ServerSettings
from unified.ui import web

PUBLIC = None
V, OP, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN

EXPECTED: dict[tuple[str, str], Role | None] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/workflows"): V,
    ("POST", "/workflows"): A,
    ("GET", "/workflows/folder"): V,
    ("POST", "/workflows/reload"): A,
    ("GET", "/workflows/{workflow_id}"): V,
    ("DELETE", "/workflows/{workflow_id}"): A,
    ("POST", "/workflows/{workflow_id}/tasks"): A,
    ("DELETE", "/workflows/{workflow_id}/tasks/{task_id:path}"): A,
    ("GET", "/workflows/{workflow_id}/versions"): V,
    ("GET", "/workflows/{workflow_id}/versions/{number}"): V,
    ("POST", "/workflows/{workflow_id}/runs"): OP,
    ("GET", "/workflows/{workflow_id}/runs"): V,
    ("GET", "/runs"): V,
    ("GET", "/runs/{run_id}"): V,
    ("POST", "/runs/{run_id}/cancel"): OP,
    ("POST", "/runs/{run_id}/retry"): OP,
    ("POST", "/tasks"): OP,
    ("GET", "/tasks"): V,
    ("GET", "/tasks/{task_id:path}"): V,
    ("POST", "/tasks/{task_id:path}/cancel"): OP,
    ("POST", "/tasks/{task_id:path}/retry"): OP,
    ("GET", "/tasks/{task_id:path}/logs"): V,
    ("POST", "/schedules"): A,
    ("GET", "/schedules"): V,
    ("GET", "/schedules/{schedule_id}"): V,
    ("DELETE", "/schedules/{schedule_id}"): A,
    ("POST", "/schedules/{schedule_id}/pause"): OP,
    ("POST", "/schedules/{schedule_id}/resume"): OP,
    ("POST", "/schedules/{schedule_id}/backfill"): OP,
    ("POST", "/alert-rules"): A,
    ("GET", "/alert-rules"): V,
    ("DELETE", "/alert-rules/{rule_id}"): A,
    ("GET", "/alerts"): V,
    ("POST", "/api-keys"): A,
    ("GET", "/api-keys"): A,
    ("GET", "/api-keys/{key_id}"): A,
    ("DELETE", "/api-keys/{key_id}"): A,
    ("GET", "/audit"): A,
    ("GET", "/metrics"): V,
}

CREDENTIALS = ["none", "wrong", "revoked", "expired", "viewer", "operator", "admin"]


@pytest.fixture
def api(flows_folder: Path) -> Iterator[Api]:
    """The conftest's app, with room for the matrix's wrong keys from its one client (some 130 within a second)."""
    settings = ServerSettings(
        database_url="memory://", workers=0, announce=False, workflows_dir=str(flows_folder), auth_max_failures=1000
    )
    yield from start_api(settings)


def concrete(path: str) -> str:
    """A path of the table with each parameter filled."""
    return re.sub(r"\{number\}", "1", re.sub(r"\{(?!number)\w+\}", "missing", path))


def walk(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """Every (method, path) of a route table, descending into included routers (FastAPI may keep them nested)."""
    found = set()
    for route in routes:
        if web.owns(route):  # the web UI signs in with a session, not a key: tests/integration/test_web.py
            continue
        nested = getattr(route, "original_router", None)
        if nested is not None:
            found |= walk(nested.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
            continue
        assert isinstance(route, Route), f"unexpected kind of route {route!r}: teach this test about it"
        found |= {(m, prefix + route.path) for m in route.methods or () if m != "HEAD"}
    return found


def test_the_matrix_names_every_route_of_the_app(api: Api) -> None:
    routes = walk(api.app.routes)
    assert routes - set(EXPECTED) == set(), "routes missing from the matrix: add them with their role"
    assert set(EXPECTED) - routes == set(), "the matrix names routes the app lacks"


@pytest.fixture
def credentials(api: Api) -> dict[str, dict[str, str]]:
    """Headers for each kind of credential."""
    keys = api.services.keys
    revoked_record, revoked = keys.create("revoked", "admin")
    keys.revoke(revoked_record.key_id)
    _, expired = keys.create("expired", "admin", expires_at=api.clock.now() + 1)
    api.clock.advance(2)
    by_role = {role: {"X-API-Key": keys.create(role, role)[1]} for role in ("viewer", "operator", "admin")}
    return {
        "none": {},
        "wrong": {"X-API-Key": "unified_000000000000_" + "A" * 43},
        "revoked": {"X-API-Key": revoked},
        "expired": {"X-API-Key": expired},
        **by_role,
    }


def expected_status(needed: Role | None, credential: str) -> str:
    """'ok' (neither 401 nor 403), '401' or '403'."""
    if needed is None:
        return "ok"
    if credential in ("none", "wrong", "revoked", "expired"):
        return "401"
    return "ok" if Role(credential).allows(needed) else "403"


def test_every_route_refuses_and_admits_the_right_credentials(api: Api, credentials: dict) -> None:
    failures = []
    for (method, path), needed in sorted(EXPECTED.items(), key=lambda item: item[0][1]):
        for credential in CREDENTIALS:
            kwargs = {"json": {}} if method == "POST" else {}
            status = api.client.request(method, concrete(path), headers=credentials[credential], **kwargs).status_code
            outcome = str(status) if status in (401, 403) else "ok"
            assert status < 500, f"{method} {path} with {credential} answered {status}"
            if outcome != expected_status(needed, credential):
                failures.append(
                    f"{method} {path} with {credential}: {status}, wanted {expected_status(needed, credential)}"
                )
    assert not failures, "\n".join(failures)


def test_a_throttled_client_gets_429_from_every_route_that_needs_a_key(api: Api, credentials: dict) -> None:
    for _ in range(api.services.keys.throttle.max_failures):
        api.services.keys.throttle.failed("testclient")
    failures = []
    for (method, path), needed in sorted(EXPECTED.items(), key=lambda item: item[0][1]):
        for credential in CREDENTIALS:
            kwargs = {"json": {}} if method == "POST" else {}
            answer = api.client.request(method, concrete(path), headers=credentials[credential], **kwargs)
            if needed is None or credential == "none":  # no key is checked: nothing to refuse
                wanted = answer.status_code != 429
            else:
                wanted = answer.status_code == 429 and answer.headers.get("Retry-After") == "60"
            if not wanted:
                failures.append(f"{method} {path} with {credential}: {answer.status_code}")
    assert not failures, "\n".join(failures)
