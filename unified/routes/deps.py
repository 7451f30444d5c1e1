"""What every router shares: the services of the app, the role each route needs, cursors, JSON-safe values."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from unified.auth import ApiKeys, Principal, Role, check_role, client_address, presented_key
from unified.errors import PermissionDeniedError, StoreError, UnifiedError, ValidationError
from unified.metrics import Metrics
from unified.registration import REGISTRY, RegisteredTask, TaskRegistry
from unified.schemas import ErrorResponse, TaskIn
from unified.store.base import Store
from unified.task import Task
from unified.task_manager import TaskManager
from unified.utils import has_lone_surrogate, json_depth
from unified.workflow.workflow import WorkflowManager
from unified.workflows_folder import WorkflowsFolder

log = logging.getLogger("unified.api")

MAX_PAGE = 1000
MAX_JSON_DEPTH = 64  # lists and objects in a request body (responses fail on JSON some 250 deep)


@dataclass
class Services:
    """The parts one server process is made of, as the routes see them."""

    store: Store
    task_manager: TaskManager
    workflow_manager: WorkflowManager
    keys: ApiKeys
    folder: WorkflowsFolder
    registry: TaskRegistry = REGISTRY
    allow_shell: bool = False
    workers: int = 0
    metrics: Metrics | None = None
    scheduler: Any = None  # unified.scheduler's scheduler, when it runs in this process


def services(request: Request) -> Services:
    """The app's services (set up by the app's lifespan)."""
    found = getattr(request.app.state, "services", None)
    if found is None:
        raise RuntimeError("the app's services are not started: run it under uvicorn or `with TestClient(app)`")
    return found


ROLE_ATTRIBUTE = "required_role"


# How a key is sent, declared for the OpenAPI document (so /docs offers "Authorize" and clients generated from the
# document send it); the key itself is read by ``presented_key``, which answers a missing or wrong one with 401.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (`unified keys create`)")
BEARER = HTTPBearer(auto_error=False, description="the same API key as `Authorization: Bearer <key>`")
KeyInHeader = Annotated[str | None, Security(API_KEY_HEADER)]
KeyAsBearer = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def require(role: Role) -> Any:
    """A dependency that authenticates the request and refuses it unless its key has ``role`` or higher."""

    def dependency(request: Request, _header: KeyInHeader = None, _bearer: KeyAsBearer = None) -> Principal:
        principal = services(request).keys.authenticate(presented_key(request), client_address(request))
        request.state.principal = principal  # the audit log names the key even when the role is too low
        check_role(principal, role)
        return principal

    setattr(dependency, ROLE_ATTRIBUTE, role)
    dependency.__name__ = f"require_{role.value}"
    return Depends(dependency)


VIEWER = require(Role.VIEWER)
OPERATOR = require(Role.OPERATOR)
ADMIN = require(Role.ADMIN)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [
        (400, "bad request"),
        (401, "no API key, or one that is wrong, revoked or expired"),
        (403, "the key's role is too low"),
        (404, "unknown id"),
        (409, "conflict with the current state"),
        (413, "request body too large"),
        (422, "invalid input"),
        (429, "too many failed authentications from this client: wait for Retry-After"),
    ]
}


def set_target(request: Request, target: str) -> None:
    """Name what a mutating request acted on, for the audit log."""
    request.state.audit_target = target


# -- what clients are told -----------------------------------------------------------------------------------
def logged_with_reference(request: Request, exc: BaseException, what: str) -> str:
    """Log ``exc`` in full (its traceback and causes) as ``what`` happened to ``request``, under a new reference that
    a client can be given instead of the details; returns the reference."""
    reference = secrets.token_hex(6)
    log.error("%s on %s %s, reference %s: %s", what, request.method, request.url.path, reference, exc, exc_info=exc)
    return reference


def public_message(request: Request, exc: UnifiedError) -> tuple[str, str | None]:
    """The message an API client or web page gets for ``exc``, and the reference the withheld text was logged under
    (None when nothing was withheld). A StoreError's own text is for the operator: the driver's error names the
    database's host, port, user and name."""
    if not isinstance(exc, StoreError):
        return str(exc), None
    reference = logged_with_reference(request, exc, "the store failed")
    return exc.for_clients(reference), reference


# -- checking requests ----------------------------------------------------------------------------------------
def refuse_unstorable(value: Any, what: str = "the request body") -> None:
    """A ValidationError for JSON that could be stored but not shown again: lists and dicts nested deeper than
    MAX_JSON_DEPTH, or text holding a lone UTF-16 surrogate. Accepted, either would fail every response that lists
    it. ``what`` names the value in the message."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValidationError(f"{what} nests lists and objects more than {MAX_JSON_DEPTH} deep: send flatter JSON")
    if has_lone_surrogate(value):
        raise ValidationError(
            f"{what} holds half of a UTF-16 surrogate pair (an escape in \\ud800-\\udfff without its "
            "partner): send valid Unicode text"
        )


def problems_message(problems: list[dict[str, Any]]) -> str:
    """One line for a request model's problems (``loc`` and ``msg`` of each): where the first is, what is wrong."""
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"]) or "request"
    return f"{where}: {first['msg']}" + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")


# -- cursors ---------------------------------------------------------------------------------------------------
def encode_cursor(kind: str, value: int) -> str:
    """An opaque cursor for the next page."""
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


MAX_POSITION = 2**62  # a sequence number or offset a cursor may hold: databases keep 64-bit integers


def decode_cursor(cursor: str | None, kind: str) -> int | None:
    """The position inside a cursor made by :func:`encode_cursor`; ValidationError if it is not one."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found_kind, _, value = text.partition(":")
        number = int(value)
        if found_kind != kind or not 0 <= number <= MAX_POSITION:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            f"cursor {cursor!r} is not valid here: pass the next_cursor of the previous page unchanged"
        ) from None
    return number


def encode_position(created_at: float, seq: int) -> str:
    """An opaque keyset cursor: the (created_at, seq) of the last item of a page, which the next page starts after."""
    return base64.urlsafe_b64encode(f"k:{created_at!r}:{seq}".encode()).decode().rstrip("=")


def decode_position(cursor: str | None) -> tuple[float, int] | None:
    """The position inside a cursor made by :func:`encode_position`; ValidationError if it is not one."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, created_at, seq = text.split(":")
        when, number = float(created_at), int(seq)
        if kind != "k" or not (math.isfinite(when) and 0 <= number <= MAX_POSITION):
            raise ValueError(text)
        return when, number
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            f"cursor {cursor!r} is not valid here: pass the next_cursor of the previous page unchanged"
        ) from None


def offset_page(items: list[Any], offset: int, limit: int) -> tuple[list[Any], str | None]:
    """A page of an already-fetched list that holds up to ``limit + 1`` items from ``offset``."""
    more = len(items) > limit
    return items[:limit], encode_cursor("o", offset + limit) if more else None


def page_of(every: list[Any], cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """The page of a list held in full that ``cursor`` points at, and the cursor of the next one."""
    offset = decode_cursor(cursor, "o") or 0
    return offset_page(every[offset : offset + limit + 1], offset, limit)


def timestamp(value: datetime | None) -> float | None:
    """Epoch seconds of an aware or naive-UTC datetime."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def jsonable(value: Any) -> Any:
    """``value`` made safe for a JSON response: non-JSON values (memory-store results) become their repr."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [jsonable(v) for v in value]
        return repr(value)


def safe_task(meta: dict[str, Any]) -> dict[str, Any]:
    """Task metadata with its result made JSON-safe."""
    return {**meta, "result": jsonable(meta.get("result"))}


# -- building tasks from requests -------------------------------------------------------------------------------
def build_task(body: TaskIn, svc: Services, principal: Principal) -> Task:
    """The Task a request describes: a registered name or folder import path, or (admin, --allow-shell) a command."""
    options = body.model_dump(exclude_none=True, exclude={"task_id", "task", "command", "args", "kwargs"})
    if (body.task is None) == (body.command is None):
        raise ValidationError("give exactly one of 'task' (a registered name or import path) or 'command'")
    if body.command is not None:
        if not svc.allow_shell:
            raise PermissionDeniedError("shell tasks are off: an admin can start the server with --allow-shell")
        check_role(principal, Role.ADMIN)
        return Task(task_id=body.task_id, command=body.command, args=body.args, kwargs=body.kwargs, **options)
    entry: RegisteredTask = svc.folder.resolve(body.task, svc.registry)  # type: ignore[arg-type]
    return entry.build(body.task_id, args=body.args, kwargs=body.kwargs, **options)
