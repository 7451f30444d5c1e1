"""``/alert-rules`` (which events go to which channel) and ``/alerts`` (what was sent, with delivery outcomes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from unified.alert_rules import ALERT_STATUSES
from unified.channels import shown_config
from unified.routes.deps import (
    ADMIN,
    MAX_PAGE,
    VIEWER,
    decode_cursor,
    jsonable,
    offset_page,
    services,
    set_target,
)
from unified.schemas import AlertPage, AlertRuleIn, AlertRuleOut

router = APIRouter(tags=["alerts"])


def masked(rule: dict[str, Any]) -> AlertRuleOut:
    """A rule as the API shows it: channel secrets replaced by ``***`` (see :func:`unified.channels.shown_config`)."""
    return AlertRuleOut(**{**rule, "channel": shown_config(rule["channel"])})


@router.post(
    "/alert-rules",
    response_model=AlertRuleOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[ADMIN],
    summary="Create an alert rule",
)
def create_rule(request: Request, body: AlertRuleIn) -> AlertRuleOut:
    """Send the named events (optionally of one workflow or task name) to a log, webhook, Slack or email channel."""
    manager = services(request).task_manager
    rule_id = manager.add_alert_rule(body.events, body.channel, body.workflow, body.task_name)
    set_target(request, rule_id)
    return masked(next(r for r in manager.list_alert_rules() if r["rule_id"] == rule_id))


@router.get("/alert-rules", response_model=list[AlertRuleOut], dependencies=[VIEWER], summary="List alert rules")
def list_rules(request: Request) -> list[AlertRuleOut]:
    """Every alert rule, oldest first, with channel secrets masked."""
    return [masked(r) for r in services(request).task_manager.list_alert_rules()]


@router.delete(
    "/alert-rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[ADMIN],
    summary="Delete an alert rule",
)
def delete_rule(request: Request, rule_id: str) -> Response:
    """Delete an alert rule; the alerts it raised stay listed."""
    services(request).task_manager.remove_alert_rule(rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


AlertStatus = Annotated[str | None, Query(pattern=f"^({'|'.join(ALERT_STATUSES)})$", description="delivery outcome")]


@router.get("/alerts", response_model=AlertPage, dependencies=[VIEWER], summary="List alerts, newest first")
def list_alerts(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
    status: AlertStatus = None,
) -> AlertPage:
    """Alerts raised, newest first, each with its delivery status, attempts and error; paginated, optionally only
    those of one delivery outcome."""
    offset = decode_cursor(cursor, "o") or 0
    found = services(request).task_manager.list_alerts(offset + limit + 1, status)[offset:]
    items, next_cursor = offset_page([{**a, "alert": jsonable(a["alert"])} for a in found], offset, limit)
    return AlertPage(items=items, next_cursor=next_cursor)
