"""The web UI's role matrix: every page and action of the app x {visitor, viewer, operator, admin}.

The role each UI route needs is written here by hand; the test fails when the app has a UI route this table does not
name (or names one it lacks), so a new page or action cannot escape the checks. Every POST must also be refused
without the session's CSRF token, whoever sends it.
"""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from tests.integration.conftest import Api
from tests.integration.test_web import csrf_of, sign_in
from unified.auth import Role
from unified.ui import web
from unified.ui.pages.base import form_of

PUBLIC = None
V, OP, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN

EXPECTED: dict[tuple[str, str], Role | None] = {
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/"): V,
    ("GET", "/ui/workflows"): V,
    ("GET", "/ui/workflows/{workflow_id}"): V,
    ("POST", "/ui/workflows/{workflow_id}/run"): OP,
    ("GET", "/ui/runs"): V,
    ("GET", "/ui/runs/{run_id}"): V,
    ("GET", "/ui/runs/{run_id}/live"): V,
    ("GET", "/ui/runs/{run_id}/data"): V,
    ("POST", "/ui/runs/{run_id}/{action}"): OP,
    ("GET", "/ui/tasks"): V,
    ("GET", "/ui/tasks/{task_id:path}"): V,
    ("GET", "/ui/task-logs/{task_id:path}"): V,
    ("GET", "/ui/task-head/{task_id:path}"): V,
    ("POST", "/ui/task-actions/{action}/{task_id:path}"): OP,
    ("GET", "/ui/schedules"): V,
    ("POST", "/ui/schedules/{schedule_id}/{action}"): OP,
    ("GET", "/ui/alerts"): V,
    ("GET", "/ui/keys"): A,
    ("POST", "/ui/keys"): A,
    ("POST", "/ui/keys/{key_id}/revoke"): A,
    ("GET", "/ui/audit"): A,
    ("GET", "/docs"): PUBLIC,  # the API's docs (Swagger UI, ReDoc): what /openapi.json says
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/ui/{rest:path}"): PUBLIC,  # the HTML "no such page": says nothing a visitor may not know
}


def nested_routes(routes: list[BaseRoute], prefix: str = "") -> dict[tuple[str, str], APIRoute]:
    """Every (method, path) of a route table and its route, descending into included routers."""
    found: dict[tuple[str, str], APIRoute] = {}
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            found |= nested_routes(nested.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        elif isinstance(route, APIRoute):
            found |= {(method, prefix + route.path): route for method in route.methods if method != "HEAD"}
    return found


def ui_routes(api: Api) -> dict[tuple[str, str], APIRoute]:
    """Every (method, path) the web UI adds to the app (its static files aside)."""
    return nested_routes([route for route in api.app.routes if web.owns(route)])


def concrete(path: str) -> str:
    """A path of the table with each parameter filled (an action the route knows, so the role check is reached)."""
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: "cancel" if m.group(1) == "action" else "missing", path)


def test_the_matrix_names_every_page_and_action_of_the_app(api: Api) -> None:
    routes = ui_routes(api)
    assert set(routes) - set(EXPECTED) == set(), "UI routes missing from the matrix: add them with their role"
    assert set(EXPECTED) - set(routes) == set(), "the matrix names UI routes the app lacks"


def test_every_post_reads_its_form_through_the_csrf_check(api: Api) -> None:
    for (method, path), route in ui_routes(api).items():
        if method == "POST":
            calls = [dependency.call for dependency in route.dependant.dependencies]
            assert form_of in calls, f"POST {path} does not take the CSRF-checked Form"
    client = sign_in(api, "admin")
    for method, path in EXPECTED:
        if method == "POST":
            refused = client.post(concrete(path), data={"csrf": "not the token"}, follow_redirects=False)
            assert refused.status_code == 403 and "security token" in refused.text, path


def test_visitors_are_sent_to_sign_in_and_each_role_reaches_just_its_pages(api: Api) -> None:
    failures = []
    api.client.cookies.clear()
    visitor_token = csrf_of(api.client)
    for (method, path), needed in EXPECTED.items():
        if needed is None:
            continue
        answer = api.client.request(method, concrete(path), data={"csrf": visitor_token}, follow_redirects=False)
        if answer.status_code != 303 or not answer.headers["location"].startswith("/login?next="):
            failures.append(f"visitor {method} {path}: {answer.status_code}")
    for role in (V, OP, A):
        client = sign_in(api, role.value)
        token = csrf_of(client, "/")
        for (method, path), needed in EXPECTED.items():
            if needed is None:
                continue
            answer = client.request(method, concrete(path), data={"csrf": token}, follow_redirects=False)
            refused = answer.status_code == 403 and f"needs the {needed.value} role" in answer.text
            if refused == role.allows(needed) or answer.status_code >= 500:
                failures.append(f"{role.value} {method} {path}: {answer.status_code}")
    assert not failures, "\n".join(failures)
