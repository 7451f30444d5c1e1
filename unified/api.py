"""The FastAPI app: routers, API-key auth, the error envelope, the body-size limit, baseline headers and the audit log.

``uvicorn unified.api:app`` serves it configured from ``UNIFIED_*`` environment variables; tests and the CLI
build their own with :func:`create_app`. Every error answers ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from unified import __version__
from unified.auth_throttle import AuthThrottle, client_of
from unified.errors import AuthenticationError, CycleError, TooManyAttempts, UnifiedError, http_status
from unified.routes import alerts, api_keys, audit, health, metrics, runs, schedules, tasks, workflows
from unified.routes.deps import (
    ERROR_RESPONSES,
    MAX_JSON_DEPTH,
    logged_with_reference,
    problems_message,
    public_message,
    refuse_unstorable,
)
from unified.server import Server, ServerSettings
from unified.store.records import AuditRecord
from unified.ui import web
from unified.utils import Clock, new_id

log = logging.getLogger("unified.api")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANONYMOUS_AUDITS = 20  # audit rows a minute per client address for requests refused before a key was accepted
# each router, in the order the app mounts them, with the error answers its operations document. Declared here, where
# the app includes them, not on each APIRouter: FastAPI builds a router's own routes as they are declared (at import),
# with a serializer for every response they document (312 of ErrorResponse for these eight codes: 7% of what a server
# does to import), while the app serves and documents the copies it builds from the include, when first asked
ROUTERS: list[tuple[APIRouter, dict[int | str, dict[str, Any]] | None]] = [
    (health.router, None),  # no key needed, nothing to refuse
    (workflows.router, ERROR_RESPONSES),
    (runs.router, ERROR_RESPONSES),
    (tasks.router, ERROR_RESPONSES),
    (schedules.router, ERROR_RESPONSES),
    (alerts.router, ERROR_RESPONSES),
    (api_keys.router, ERROR_RESPONSES),
    (audit.router, ERROR_RESPONSES),
    (metrics.router, ERROR_RESPONSES),
]
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error envelope every failure answers with."""
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


# -- error handlers ----------------------------------------------------------------------------------------------
async def on_unified_error(request: Request, exc: Exception) -> JSONResponse:
    """unified's own errors, with the status of ``errors.HTTP_STATUS``."""
    assert isinstance(exc, UnifiedError)
    message, reference = public_message(request, exc)
    details: dict[str, Any] | None = {"cycle": exc.cycle} if isinstance(exc, CycleError) else None
    headers = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'} if isinstance(exc, AuthenticationError) else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
        details = {"retry_after_seconds": exc.retry_after_seconds}
    if reference is not None:
        details = {"reference": reference}
    return error_response(http_status(exc), exc.code, message, details, headers)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Request bodies and parameters that fail validation: 400 for malformed JSON, else 422 with each problem."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    if any(p["type"] == "json_invalid" for p in problems):
        return error_response(
            400,
            "malformed_json",
            "the request body is not valid JSON: check quotes, commas and "
            "brackets, and send Content-Type: application/json",
            problems,
        )
    return error_response(422, "invalid", problems_message(problems), problems)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method, body too large) in the same envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405) and exc.detail in ("Not Found", "Method Not Allowed"):
        what = "no such path" if exc.status_code == 404 else "this path does not take this method"
        message = f"{what}: {request.method} {request.url.path}; the API is described at /docs"
        return error_response(exc.status_code, HTTP_CODES[exc.status_code], message, headers=exc.headers)
    return error_response(
        exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail), headers=exc.headers
    )


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered as a 500 without internals."""
    reference = logged_with_reference(request, exc, "unexpected error")
    message = f"the server failed unexpectedly: retry, and if it goes on, report reference {reference} (in its log)"
    return error_response(500, "internal", message, {"reference": reference})


async def refuse_unstorable_json(request: Request) -> None:
    """A ValidationError for a JSON body that could be stored but not shown again: lists and dicts nested deeper than
    MAX_JSON_DEPTH, or text holding a lone UTF-16 surrogate. Accepted, either would fail every response that lists
    it. Only a body with that many brackets or a ``\\ud`` escape is parsed here (its bytes counted, not copied)."""
    if request.method not in MUTATING:
        return
    body = await request.body()
    deep = body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
    if not deep and b"\\ud" not in body and b"\\uD" not in body:
        return
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return  # malformed (or too deep for the parser): the route's own parsing answers 400
    refuse_unstorable(value)


# -- middleware ----------------------------------------------------------------------------------------------------
class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length first, then count the bytes as they arrive."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = (
            f"the request body is over the limit of {self.max_bytes} bytes: send less, or raise "
            "UNIFIED_MAX_BODY_BYTES on the server"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status, code = (413, "payload_too_large") if declared.isdigit() else (400, "bad_request")
            text = message if status == 413 else "the Content-Length header is not a number"
            await error_response(status, code, text)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            incoming = await receive()
            seen += len(incoming.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, message)
            return incoming

        await self.app(scope, counted, send)


STATIC_PREFIX = "/ui/static/"
BASELINE_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"))
NO_STORE = (b"cache-control", b"no-store")


class BaselineHeadersMiddleware:
    """Adds what every response should carry unless it set its own: ``nosniff``, no framing, and ``no-store`` on all
    but the static files. API answers hold task results, new keys' secrets and the audit log, which neither a shared
    cache nor the browser's disk should keep."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and add the missing headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = BASELINE_HEADERS if scope["path"].startswith(STATIC_PREFIX) else (*BASELINE_HEADERS, NO_STORE)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                missing = [header for header in wanted if header[0] not in present]
                message = {**message, "headers": [*message.get("headers", []), *missing]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _header_key(scope: Scope) -> str | None:
    """The API key in a raw request's headers (for requests refused before authentication ran)."""
    headers = dict(scope.get("headers", []))
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return key or (value.strip() if scheme.lower() == "bearer" else "") or None


class AuditMiddleware:
    """Writes every mutating request to the audit log: key name, role, method, path, target, outcome.

    Requests refused before any key was accepted (no key, a wrong one, a throttled client) are written at most
    ``ANONYMOUS_AUDITS`` per client address a minute, the rest counted in the server's log: anyone can send them,
    and one row (a committed write) each would let a stranger fill the database's disk at the server's request rate.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._anonymous: tuple[AuthThrottle, AuthThrottle] | None = None  # made with the services' clock on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and record how it ended."""
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        outcome = 500

        async def watch(message: Message) -> None:
            nonlocal outcome
            if message["type"] == "http.response.start":
                outcome = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            await run_in_threadpool(self._record, scope, state, outcome)

    def _record(self, scope: Scope, state: dict[str, Any], outcome: int) -> None:
        services = getattr(scope.get("app"), "state", None)
        services = getattr(services, "services", None)
        if services is None:
            return
        principal = state.get("principal")
        if principal is None and not self._audits_anonymous(scope, services.task_manager.clock, outcome):
            return
        principal = principal or services.keys.identify(_header_key(scope))
        target = state.get("audit_target") or "/".join(str(v) for v in scope.get("path_params", {}).values()) or None
        entry = AuditRecord(
            audit_id=new_id(),
            at=services.task_manager.clock.now(),
            key_name=principal.name if principal else None,
            role=principal.role.value if principal else None,
            method=scope["method"],
            path=scope["path"],
            target=target,
            outcome=outcome,
        )
        try:
            services.store.insert_audit(entry)
        except Exception:
            log.exception("cannot write the audit entry for %s %s", entry.method, entry.path)

    def _audits_anonymous(self, scope: Scope, clock: Clock, outcome: int) -> bool:
        """Whether this client's request, refused before a key was accepted, still fits its audit budget."""
        if self._anonymous is None or self._anonymous[0].clock is not clock:
            # the audit budget, and one warning a minute per client once it is spent
            self._anonymous = (AuthThrottle(clock, ANONYMOUS_AUDITS), AuthThrottle(clock, 1))
        budget, warned = self._anonymous
        client = (scope.get("client") or ("unknown",))[0]
        if budget.retry_after(client) is None:
            budget.failed(client)
            return True
        if warned.retry_after(client) is None:
            warned.failed(client)
            log.warning("over %d requests a minute refused before a key was accepted from %s: the rest of this minute's"
                        " are not audited (the last: %s %s -> %d)", ANONYMOUS_AUDITS, client_of(client),
                        scope["method"], scope["path"], outcome)  # fmt: skip
        return False


# -- the app -------------------------------------------------------------------------------------------------------
def create_app(settings: ServerSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """A FastAPI app whose lifespan starts a :class:`Server` with ``settings`` (default: from the environment)."""
    settings = settings or ServerSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = Server(settings, clock)
        app.state.services = await run_in_threadpool(server.start)
        app.state.server = server
        if settings.announce:
            print(server.banner(), flush=True)
        try:
            yield
        finally:
            await run_in_threadpool(server.stop)
            app.state.services = None

    app = FastAPI(
        title="unified",
        version=__version__,
        description="Workflow orchestrator REST API. Authenticate with the X-API-Key header "
        "(or Authorization: Bearer). Roles: viewer < operator < admin.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load scripts from a CDN: unified.ui.pages.api_docs serves vendored ones
        redoc_url=None,
    )
    app.state.services = None
    app.state.settings = settings
    for router, responses in ROUTERS:
        app.include_router(router, dependencies=[Depends(refuse_unstorable_json)], responses=responses)
    app.add_exception_handler(UnifiedError, on_unified_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(BaselineHeadersMiddleware)  # outermost: error answers of the other middleware get them too
    web.install(app)
    return app


def __getattr__(name: str) -> Any:
    """``app`` (``uvicorn unified.api:app``, its own --host and --port), made on first use from the environment: an
    import for ``create_app`` (the CLI, the tests) reads no settings, so a bad ``UNIFIED_*`` variable it overrides
    cannot stop it."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = globals()["app"] = create_app(ServerSettings.from_env(url_known=False))
    return made
