"""Schedules (pause, resume, backfill), alerts (rules and history), API keys and the audit log."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from typing import Any

from fastapi import Request, Response

from unified.alert_rules import ALERT_STATUSES
from unified.auth import Role
from unified.channels import shown_config
from unified.errors import NotFoundError
from unified.routes.api_keys import revoke_key
from unified.schemas import ApiKeyIn
from unified.ui.pages.base import PAGE_SIZE, Form, Page, back, checked, clamp, page_router, redirect, render

router = page_router()

ALERT_PAGE = 100
MAX_ALERTS = 2000
UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def every(seconds: float) -> str:
    """An interval in words: ``every 5 minutes``, ``every hour``, ``every 90 seconds``."""
    for unit, size in UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def in_words(schedule: dict[str, Any]) -> str:
    """When a schedule fires, in words (cron-descriptor for cron expressions)."""
    if schedule.get("cron"):
        from cron_descriptor import Options, get_description

        options = Options()
        options.use_24hour_time_format = True
        try:
            return str(get_description(schedule["cron"], options))
        except Exception:  # a form the describer does not know: the expression itself still reads
            return schedule["cron"]
    return every(float(schedule.get("interval_seconds") or 0))


def ended(schedule: dict[str, Any], now: float) -> bool:
    """True once the schedule's ``end_at`` has passed and no fire time before it is left (a catch-up after a
    scheduler was down may still fire those): it fires no more, so pausing or resuming it means nothing."""
    end = schedule.get("end_at")
    return end is not None and datetime.fromisoformat(end).timestamp() <= now and not schedule.get("next_fire_time")


@router.get("/ui/schedules")
def schedules_page(ui: Page) -> Response:
    """Every schedule: timing in words, time zone, next five fire times, last fire; pause, resume, backfill."""
    ui.require(Role.VIEWER)
    manager = ui.svc.workflow_manager
    names = ui.svc.store.workflow_names()
    now = ui.now()
    rows = [
        {"s": s, "words": in_words(s), "ended": ended(s, now),
         "next": manager.next_fire_times(s["schedule_id"], 5) if not s["paused"] else []}
        for s in manager.list_schedules()
    ]  # fmt: skip
    return render(ui, "schedules.html", rows=rows, workflow_names=names)


@router.post("/ui/schedules/{schedule_id}/{action}")
def schedule_action(request: Request, schedule_id: str, action: str, ui: Page, form: Form) -> Response:
    """Pause, resume or backfill (``start`` to ``end``, read in the schedule's time zone) one schedule."""
    ui.require(Role.OPERATOR)
    request.state.audit_target = schedule_id
    manager = ui.svc.workflow_manager
    if action == "pause":
        manager.pause_schedule(schedule_id)
        message = "schedule paused"
    elif action == "resume":
        manager.resume_schedule(schedule_id)
        message = "schedule resumed"
    elif action == "backfill":
        fired = manager.backfill(schedule_id, form.get("start", ""), form.get("end", ""))
        queued = sum(f["state"] == "queued" for f in fired)
        message = f"backfill started {len(fired) - queued} fire(s)" + (
            f", {queued} queued for max_active_runs" if queued else ""
        )
    else:
        raise NotFoundError(f"schedules have no action {action!r}: use pause, resume or backfill")
    return back(ui, form, "/ui/schedules", message)


@router.get("/ui/alerts")
def alerts_page(ui: Page, limit: str | None = None, status: str | None = None) -> Response:
    """Alert rules and the newest alerts with their delivery outcome (sent, failed, pending)."""
    ui.require(Role.VIEWER)
    shown = clamp(limit, ALERT_PAGE, 1, MAX_ALERTS)
    manager = ui.svc.workflow_manager
    status = status if status in ALERT_STATUSES else None
    alerts = manager.list_alerts(shown + 1, status)
    return render(
        ui,
        "alerts.html",
        rules=[{**rule, "channel": shown_config(rule["channel"])} for rule in manager.list_alert_rules()],
        alerts=alerts[:shown],
        more=len(alerts) > shown and shown < MAX_ALERTS,
        limit=shown,
        status=status or "",
    )


NEW_KEY_COOKIE = "unified_new_key"  # a one-time token naming the key just created (not its secret)
REVEAL_SECONDS = 60.0
MAX_REVEALS = 100


class KeyReveals:
    """Secrets of keys just created in the web UI, each held in this process's memory for the one page that shows it:
    taken once, by the admin key that created it, within REVEAL_SECONDS; the browser holds only a random token. So
    the secret is in no cookie (which a browser may keep on disk and a proxy may log) and no second view shows it."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, str, str, float]] = {}  # token: key id, secret, creator's key id, until
        self._lock = threading.Lock()

    def hold(self, key_id: str, secret: str, creator: str, now: float) -> str:
        """Hold ``secret`` for its creator; returns the token that takes it."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._held = {t: held for t, held in self._held.items() if held[3] > now}
            while len(self._held) >= MAX_REVEALS:  # a flood of creations: the oldest are not shown, never stored
                del self._held[next(iter(self._held))]
            self._held[token] = (key_id, secret, creator, now + REVEAL_SECONDS)
        return token

    def take(self, token: str, viewer: str, now: float) -> tuple[str, str] | None:
        """The (key id, secret) ``token`` holds for ``viewer``, once; None if it is unknown, taken, expired or not
        ``viewer``'s."""
        with self._lock:
            held = self._held.get(token)
            if held is None or held[2] != viewer:
                return None
            del self._held[token]
        return (held[0], held[1]) if held[3] > now else None


def key_reveals(request: Request) -> KeyReveals:
    """The app's KeyReveals (made on first use)."""
    state = request.app.state
    if getattr(state, "key_reveals", None) is None:
        state.key_reveals = KeyReveals()
    return state.key_reveals


@router.get("/ui/keys")
def keys_page(request: Request, ui: Page) -> Response:
    """Every API key (admin): name, role, owner, created, last used, revoked; and, once, the secret of the key
    just created here."""
    principal = ui.require(Role.ADMIN)
    keys = ui.svc.keys.list()
    token = request.cookies.get(NEW_KEY_COOKIE)
    taken = key_reveals(request).take(token, principal.key_id, ui.now()) if token else None
    record = next((k for k in keys if taken and k.key_id == taken[0]), None)
    created = {"record": record, "key": taken[1]} if taken and record else None
    response = render(ui, "keys.html", keys=keys, created=created, missed=bool(token) and created is None)
    if token:
        response.delete_cookie(NEW_KEY_COOKIE, path="/ui/keys")
    return response


@router.post("/ui/keys")
def create_key(request: Request, ui: Page, form: Form) -> Response:
    """Create a key, then show the keys page with its secret this once: a redirect, so reloading that page
    creates no second key."""
    principal = ui.require(Role.ADMIN)
    fields = {"name": form.get("name", ""), "role": form.get("role") or "viewer", "owner": form.get("owner") or None}
    body = checked(ApiKeyIn, fields)  # the REST API's rules: a name of 1-200 characters, a known role
    record, key = ui.svc.keys.create(body.name, body.role, owner=body.owner)
    request.state.audit_target = record.key_id
    token = key_reveals(request).hold(record.key_id, key, principal.key_id, ui.now())
    response = redirect(ui, "/ui/keys")
    response.set_cookie(NEW_KEY_COOKIE, token, max_age=int(REVEAL_SECONDS), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/ui/keys")  # fmt: skip
    return response


@router.post("/ui/keys/{key_id}/revoke")
def revoke(request: Request, key_id: str, ui: Page, form: Form) -> Response:
    """Revoke a key at once; the last working admin key cannot be revoked."""
    ui.require(Role.ADMIN)
    record = revoke_key(request, key_id)
    return redirect(ui, "/ui/keys", f"revoked key {record.name!r} ({record.key_id})")


@router.get("/ui/audit")
def audit_page(ui: Page, offset: str | None = None) -> Response:
    """The audit log (admin), newest first, paginated on the server."""
    ui.require(Role.ADMIN)
    start = clamp(offset, 0, 0, 10**9)
    found = ui.svc.store.list_audit(PAGE_SIZE + 1, start)
    return render(ui, "audit.html", entries=found[:PAGE_SIZE], more=len(found) > PAGE_SIZE, offset=start,
                  page_size=PAGE_SIZE)  # fmt: skip
