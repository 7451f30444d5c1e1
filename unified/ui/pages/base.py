"""What every web page shares: the signed session cookie, CSRF tokens, roles, templates and error pages.

A session is a cookie holding ``{key id, key stamp, CSRF token, issued at}`` signed with HMAC-SHA256 under the
server's secret; it never holds the API key itself. Each request looks the key up again, so a revoked, expired or
deleted key ends its sessions at once, and so does a sign-out or a change of the key's role: each changes the key's
stamp (``auth.session_stamp``), which the session must match. The cookie is HttpOnly and SameSite=Strict, and every
POST must carry the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``), sign-in included
(visitors get a session without a key). Templates autoescape everything; pages are served with a
Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel
from pydantic import ValidationError as ModelError

from unified.auth import Principal, Role, check_role, session_stamp
from unified.errors import NotFoundError, UnifiedError, ValidationError, http_status
from unified.routes.deps import Services, problems_message, public_message, services
from unified.task import RUN_STATES

if TYPE_CHECKING:
    from jinja2 import Environment

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
COOKIE = "unified_session"
FLASH_COOKIE = "unified_flash"
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 64 * 1024
PAGE_SIZE = 50

# every state a user can see: an icon and a label as well as a colour, so none is told by colour alone
STATES: dict[str, str] = {
    "pending": "◌",
    "queued": "◷",
    "running": "▶",
    "retrying": "↻",
    "success": "✓",
    "failure": "✕",
    "timeout": "◔",
    "canceled": "⊘",
    "skipped": "↷",
    "lost": "?",
    "handed_back": "↩",
    "sent": "✓",
    "failed": "✕",
    "started": "▶",
    "paused": "❚❚",
    "active": "▶",
    "ended": "■",
}
TASK_STATES = ("pending", "queued", "running", "retrying", "success", "failure", "timeout", "canceled", "skipped")
RETRYABLE = frozenset({"failure", "timeout", "canceled", "skipped"})  # states a task can be retried from
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# -- formatting ------------------------------------------------------------------------------------------------
def when(value: float | str | None) -> str:
    """An epoch or ISO time as ``2026-01-31 14:05:09 UTC``; empty for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """Seconds as ``850 ms``, ``4.2 s``, ``3 m 04 s`` or ``2 h 05 m``; empty for None."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def first_line(text: Any, limit: int = 200) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_line(error: dict[str, Any] | None) -> str:
    """``Type: message`` of a stored error, on one line."""
    if not error:
        return ""
    return first_line(f"{error.get('type') or 'Error'}: {error.get('message') or ''}")


def pretty(value: Any, indent: int | None = 2) -> str:
    """``value`` as JSON, indented (its repr when it is not JSON); text in any script as it is written, since the
    template escapes what HTML must not see."""
    try:
        return json.dumps(value, indent=indent, sort_keys=True, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def url_part(value: Any) -> str:
    """``value`` quoted to be one part of a URL path (a slash too)."""
    return quote(str(value), safe="")


@functools.cache
def templates() -> Environment:
    """The pages' templates, set up on the first page shown: jinja2 is not loaded before the server answers."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters.update(
        when=when, duration=duration, first_line=first_line, error_line=error_line, pretty=pretty, q=url_part
    )
    env.globals.update(STATES=STATES, TASK_STATES=TASK_STATES, RUN_STATES=RUN_STATES, Role=Role)
    return env


# -- sessions -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """What the session cookie holds: the signed-in key's id and stamp (None for a visitor) and the CSRF token."""

    key_id: str | None
    csrf: str
    issued_at: float
    stamp: str | None = None

    @classmethod
    def fresh(cls, key_id: str | None = None, stamp: str | None = None) -> Session:
        """A new session with a new CSRF token."""
        return cls(key_id, secrets.token_urlsafe(24), time.time(), stamp)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_session(session: Session, secret: bytes) -> str:
    """The cookie value: base64 JSON, a dot, and its HMAC-SHA256."""
    fields = {"k": session.key_id, "c": session.csrf, "t": session.issued_at, "s": session.stamp}
    body = _b64(json.dumps(fields).encode())
    return f"{body}.{_b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())}"


def decode_session(value: str | None, secret: bytes, now: float) -> Session | None:
    """The session in a cookie value, or None if it is missing, forged, malformed or older than 12 hours."""
    if not value or value.count(".") != 1:
        return None
    body, signature = value.split(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = Session(data["k"], str(data["c"]), float(data["t"]), data.get("s"))
    except (ValueError, KeyError, TypeError):
        return None
    return session if 0 <= now - session.issued_at < SESSION_SECONDS else None


def secret_of(request: Request) -> bytes:
    """The key sessions are signed with (set by ``unified.ui.web.install``)."""
    return request.app.state.ui_secret


def set_session(response: Response, request: Request, session: Session) -> None:
    """Put ``session`` in the response's cookie: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        encode_session(session, secret_of(request)),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


class LoginRequired(Exception):
    """No signed-in key: the page answers with a redirect to the sign-in page."""


class CsrfError(UnifiedError):
    """A form or action arrived without the session's CSRF token."""

    code = "csrf"


class FormTooLarge(ValidationError):
    """A form over MAX_FORM_BYTES."""

    code = "payload_too_large"


PAGE_STATUS: dict[type[UnifiedError], int] = {CsrfError: 403, FormTooLarge: 413}  # the pages' own errors


def page_status(exc: UnifiedError) -> int:
    """The HTTP status of an error page: the pages' own errors first, then the API's table."""
    return next((status for kind, status in PAGE_STATUS.items() if isinstance(exc, kind)), http_status(exc))


@dataclass
class Ui:
    """One request as the pages see it: the services, the session and the signed-in principal (if any)."""

    request: Request
    svc: Services
    session: Session
    principal: Principal | None
    new_session: bool = False

    def can(self, role: str | Role) -> bool:
        """True if the signed-in key may act as ``role``."""
        return self.principal is not None and self.principal.role.allows(Role(role))

    def require(self, role: Role) -> Principal:
        """The principal, if it has ``role``; LoginRequired or PermissionDeniedError otherwise."""
        if self.principal is None:
            raise LoginRequired
        self.request.state.principal = self.principal  # the audit log names the key
        check_role(self.principal, role)
        return self.principal

    def now(self) -> float:
        """The service clock's time."""
        return self.svc.task_manager.clock.now()


def _principal(svc: Services, session: Session, now: float) -> Principal | None:
    """The session's key as a principal, unless the key is gone, revoked, expired or no longer the one (and in the
    state) the session was made with."""
    if session.key_id is None or not isinstance(session.stamp, str):
        return None
    try:
        record = svc.store.get_api_key(session.key_id)
    except NotFoundError:
        return None
    if record.revoked_at is not None or (record.expires_at is not None and record.expires_at <= now):
        return None
    if not hmac.compare_digest(session.stamp.encode(), session_stamp(record).encode()):
        return None
    return Principal(record.key_id, record.name, Role(record.role))


def ui(request: Request) -> Ui:
    """The dependency every page takes: the session (a fresh visitor one if none) and its principal."""
    svc = services(request)
    found = decode_session(request.cookies.get(COOKIE), secret_of(request), time.time())
    session = found or Session.fresh()
    return Ui(request, svc, session, _principal(svc, session, svc.task_manager.clock.now()), found is None)


async def form_of(request: Request) -> dict[str, str]:
    """The request's urlencoded form, once its CSRF token matched the session's; CsrfError otherwise."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge(
            f"the form is over the limit of {MAX_FORM_BYTES // 1024} KB ({len(body):,} bytes sent): send less, "
            "or use the REST API (it takes larger bodies) for big params"
        )
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    found = decode_session(request.cookies.get(COOKIE), secret_of(request), time.time())
    token = form.get("csrf") or request.headers.get("x-csrf-token") or ""
    if found is None or not hmac.compare_digest(token.encode(), found.csrf.encode()):
        raise CsrfError("the form's security token is missing or out of date: reload the page and try again")
    return form


Page = Annotated[Ui, Depends(ui)]  # a page's request: session and principal
Form = Annotated[dict[str, str], Depends(form_of)]  # a POST's form, CSRF-checked


# -- responses ------------------------------------------------------------------------------------------------
def _finish(response: Response, ui: Ui) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if ui.new_session:
        set_session(response, ui.request, ui.session)
    if ui.request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def render(ui: Ui, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` rendered with ``context`` plus the session, principal and flash message."""
    flash = unquote(ui.request.cookies.get(FLASH_COOKIE, ""))
    html = (
        templates()
        .get_template(template)
        .render(
            ui=ui, principal=ui.principal, csrf=ui.session.csrf, flash=flash[:300], path=ui.request.url.path, **context
        )
    )
    return _finish(HTMLResponse(html, status_code=status_code), ui)  # type: ignore[return-value]


def same_site_page(request: Request) -> str | None:
    """The path of the page of this server a request came from (its Referer), if it says so."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/"):
        return None
    return local_path(referer.path + (f"?{referer.query}" if referer.query else ""), "") or None


def local_path(target: str | None, fallback: str = "/") -> str:
    """``target`` if it is a path on this server, else ``fallback``: no redirect leaves the site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return fallback


def redirect(ui: Ui, url: str, flash: str | None = None) -> Response:
    """A 303 to ``url`` (a path on this server), with an optional one-time message for the next page."""
    target = local_path(url)
    response = _finish(RedirectResponse(target, status_code=303), ui)
    if flash:
        # percent-encoded: a cookie header is latin-1, and a message may name a key or a workflow in any script
        message = quote(flash[:300], safe="")
        response.set_cookie(FLASH_COOKIE, message, max_age=60, httponly=True, samesite="strict", path="/")
    return response


def back(ui: Ui, form: dict[str, str], fallback: str, flash: str) -> Response:
    """Redirect to the form's ``next`` page (a local path), else to ``fallback``."""
    target = form.get("next", "")
    return redirect(ui, local_path(target, fallback), flash)


def scripted(request: Request) -> bool:
    """True for a request a page's script sends (htmx's, which carry ``HX-Request``, or a fetch for JSON), not a
    visit: a redirect would be followed inside it, out of sight."""
    accept = request.headers.get("accept", "")
    return "hx-request" in request.headers or ("application/json" in accept and "text/html" not in accept)


def to_sign_in(request: Request) -> Response:
    """Send a visitor with no session to the sign-in page, then back: a 303 for a visit; for a page's script, 401
    with ``HX-Redirect`` (htmx goes there itself; run.js too) naming the page it runs on (its Referer)."""
    if scripted(request):
        page = same_site_page(request) or "/"
        headers = {"HX-Redirect": f"/login?next={quote(page, safe='')}", **SECURITY_HEADERS}
        return Response("signed out: sign in again", status_code=401, headers=headers, media_type="text/plain")
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(wanted, safe='')}", status_code=303)


class UiRoute(APIRoute):
    """A page route: no session sends the visitor to sign in; unified's errors become an HTML error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so pages never answer with the API's JSON errors."""
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return to_sign_in(request)
            except UnifiedError as exc:
                message, _ = public_message(request, exc)
                current = ui(request)
                status = page_status(exc)
                back = same_site_page(request) if request.method == "POST" else None  # a refused form
                return render(current, "error.html", status_code=status, status=status, message=message, back=back)

        return page_handler


def page_router() -> APIRouter:
    """A router for pages: hidden from the OpenAPI document, errors shown as pages."""
    return APIRouter(route_class=UiRoute, include_in_schema=False)


Model = TypeVar("Model", bound=BaseModel)


def checked(model: type[Model], fields: dict[str, Any]) -> Model:
    """A form's ``fields`` read by the REST API's request ``model``, so a form takes just what the API takes; a
    ValidationError naming the first problem otherwise."""
    try:
        return model.model_validate(fields)
    except ModelError as exc:
        problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ValidationError(f"{problems_message(problems)}: fix it and retry") from None


def clamp(value: str | None, default: int, low: int, high: int) -> int:
    """A whole-number query parameter, defaulted when absent or malformed, kept within [low, high]."""
    try:
        number = int(value) if value not in (None, "") else default
    except ValueError:
        number = default
    return max(low, min(high, number))


def one_of(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """``value`` if it is one of ``allowed``, else None (a filter that is not set)."""
    return value if value in allowed else None
