"""The web UI: sign-in and sign-out, the page routers of ``unified.ui.pages``, and the vendored static files.

``install(app)`` adds it all to the FastAPI app: the dashboard at ``/``, pages under ``/ui/``, static files
under ``/ui/static/``. Pages call the managers and the store in-process, as the REST routes do. Sessions are
signed with ``UNIFIED_SESSION_SECRET`` when it is set (needed when several server processes share sign-ins),
else with a random secret made at start, so a restart signs everyone out.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from unified.auth import client_address, session_stamp
from unified.errors import AuthenticationError, NotFoundError, TooManyAttempts
from unified.ui.pages import admin, api_docs, dashboard, runs, tasks, workflows
from unified.ui.pages.base import (
    COOKIE,
    STATIC,
    Form,
    Page,
    Session,
    local_path,
    page_router,
    redirect,
    render,
    set_session,
)

router = page_router()
STATIC_NAME = "ui-static"


@router.get("/login")
def login_page(ui: Page, next: str | None = None) -> Response:
    """The sign-in form (an API key)."""
    return render(ui, "login.html", next=local_path(next), error=None)


@router.post("/login")
def login(request: Request, ui: Page, form: Form) -> Response:
    """Check the key; on success start a new session (new CSRF token) and go where the visitor was going. Failed
    sign-ins count against the visitor's address (``unified.auth_throttle``)."""
    try:
        principal = ui.svc.keys.authenticate(form.get("api_key", "").strip() or None, client_address(request))
    except AuthenticationError as exc:
        return render(ui, "login.html", status_code=401, next=local_path(form.get("next")), error=str(exc))
    except TooManyAttempts as exc:
        page = render(ui, "login.html", status_code=429, next=local_path(form.get("next")), error=str(exc))
        page.headers["Retry-After"] = str(exc.retry_after_seconds)
        return page
    request.state.principal = principal
    ui.session = Session.fresh(principal.key_id, session_stamp(ui.svc.store.get_api_key(principal.key_id)))
    ui.new_session = True
    return redirect(ui, local_path(form.get("next")), f"signed in as {principal.name} ({principal.role.value})")


@router.post("/logout")
def logout(request: Request, ui: Page, form: Form) -> Response:
    """End every session of the signed-in key, on the server (a copy of the cookie stops working too), and go back to
    the sign-in page."""
    if ui.principal is not None:
        request.state.principal = ui.principal  # the audit log names who signed out
        ui.svc.keys.end_sessions(ui.principal.key_id)
    response = redirect(ui, "/login", "signed out: every session of this key, on any browser, has ended")
    set_session(response, ui.request, Session.fresh())
    return response


router.include_router(dashboard.router)
router.include_router(workflows.router)
router.include_router(runs.router)
router.include_router(tasks.router)
router.include_router(admin.router)
router.include_router(api_docs.router)


@router.get("/ui/{rest:path}")
def no_such_page(ui: Page, rest: str) -> Response:
    """Any other path under /ui/: the HTML error page, not the API's JSON (the last route, after the static files)."""
    raise NotFoundError(f"there is no page /ui/{rest}: the menu above leads to every page")


def owns(route: Any) -> bool:
    """True for the entries ``install`` adds to an app's route table (the page router and the static files)."""
    return getattr(route, "original_router", None) is router or getattr(route, "name", None) == STATIC_NAME


def install(app: FastAPI, secret: str | None = None) -> None:
    """Serve the web UI from ``app``: pages, sign-in, and static files under ``/ui/static``."""
    chosen = secret or os.environ.get("UNIFIED_SESSION_SECRET")
    app.state.ui_secret = chosen.encode() if chosen else secrets.token_bytes(32)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name=STATIC_NAME)  # before the pages' catch-all
    app.include_router(router)


__all__ = ["COOKIE", "install", "owns", "router"]
