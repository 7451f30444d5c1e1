"""Alert rules: which engine events become alerts, and for which channel; and the stored alerts as listed.

:class:`AlertRules` keeps the rules of a store, read again every ``cache_seconds`` (so rules edited by another
process are seen that soon, and at once when edited here), and tells which enabled rules match an event: its name,
and optionally its workflow (by id or name) and task name. :class:`unified.alerts.AlertService` raises and delivers
the alerts of the matching rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from unified import events as ev
from unified.channels import Channel, channel_from_config
from unified.errors import UnifiedError, ValidationError
from unified.store import Store
from unified.store.records import AlertRecord, AlertRuleRecord
from unified.utils import Clock, iso, new_id

ALERT_EVENTS = (
    ev.TASK_FAILED, ev.TASK_TIMEOUT, ev.TASK_RETRYING, ev.WORKFLOW_FAILED, ev.WORKFLOW_SUCCEEDED,
    ev.SCHEDULE_MISSED, ev.SLA_MISSED,
)  # fmt: skip
ALERT_STATUSES = ("pending", "sent", "failed")  # an alert's delivery: queued, delivered, given up on


def check_events(events: Iterable[str] | str) -> list[str]:
    """``events`` as a list of known event names; a ValidationError naming any unknown one."""
    names = [events] if isinstance(events, str) else list(events)
    if not names:
        raise ValidationError(f"an alert rule needs at least one event, for example {list(ALERT_EVENTS)}")
    unknown = sorted(set(names) - ev.EVENTS)
    if unknown:
        raise ValidationError(f"unknown event names {unknown}; alert on any of {sorted(ev.EVENTS)}")
    return names


def alert_dict(record: AlertRecord) -> dict[str, Any]:
    """A stored alert and its delivery outcome as a JSON-ready dict."""
    return {
        "alert_id": record.alert_id,
        "event": record.event,
        "rule_id": record.rule_id,
        "channel": record.channel,
        "status": record.status,
        "attempts": record.attempts,
        "error": record.error,
        "created_at": iso(record.created_at),
        "delivered_at": iso(record.delivered_at),
        "alert": record.payload,
    }


def list_alerts(store: Store, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
    """The store's alerts, newest first, each with its delivery status, attempts and error; only ``status`` ones if
    given."""
    if status is not None and status not in ALERT_STATUSES:
        raise ValidationError(f"{status!r} is not an alert status: filter by one of {', '.join(ALERT_STATUSES)}")
    return [alert_dict(a) for a in store.list_alerts(limit, status)]


class AlertRules:
    """The alert rules of a store, cached for ``cache_seconds``, and which of them an event matches."""

    def __init__(self, store: Store, clock: Clock, cache_seconds: float = 5.0) -> None:
        self.store, self.clock = store, clock
        self.cache_seconds = cache_seconds  # how soon rules edited by another process are seen
        self._rules: list[AlertRuleRecord] | None = None
        self._events: frozenset[str] = frozenset()  # the events the enabled rules name
        self._read_at = 0.0
        self._workflow_names: dict[str, str] = {}

    def add(
        self,
        events: Iterable[str] | str,
        channel: Channel | dict[str, Any],
        workflow: str | None = None,
        task_name: str | None = None,
    ) -> str:
        """Store a rule sending the named events (optionally only of one workflow id or name, or task name) to
        ``channel``; returns its id."""
        config = channel_from_config(channel).config() if isinstance(channel, dict) else channel.config()
        rule = AlertRuleRecord(new_id(), check_events(events), config, workflow, task_name, True, self.clock.now())
        self.store.put_alert_rule(rule)
        self._rules = None
        return rule.rule_id

    def remove(self, rule_id: str) -> None:
        """Delete a rule; alerts it raised stay listed."""
        self.store.delete_alert_rule(rule_id)
        self._rules = None

    def listed(self) -> list[dict[str, Any]]:
        """Every rule as a JSON-ready dict: id, events, channel config, filters, enabled, created_at."""
        return [
            {
                "rule_id": r.rule_id,
                "events": r.events,
                "channel": r.channel,
                "workflow": r.workflow,
                "task_name": r.task_name,
                "enabled": r.enabled,
                "created_at": iso(r.created_at),
            }
            for r in self.store.list_alert_rules()
        ]

    def current(self) -> list[AlertRuleRecord]:
        """The rules, read again once the cache is ``cache_seconds`` old or a rule changed here."""
        if self._rules is None or time.monotonic() - self._read_at > self.cache_seconds:
            return self._read()
        return self._rules

    def _read(self) -> list[AlertRuleRecord]:
        rules = self.store.list_alert_rules()
        self._events = frozenset(name for rule in rules if rule.enabled for name in rule.events)
        self._rules, self._read_at = rules, time.monotonic()
        return rules

    def accepts(self, name: str) -> bool:
        """Whether an enabled rule names this event: with none, the engine builds no event for the alerts."""
        # current()'s test without its call: asked at every task transition (EventBus.wants)
        if self._rules is None or time.monotonic() - self._read_at > self.cache_seconds:
            self._read()
        return name in self._events

    def matching(self, event: dict[str, Any]) -> list[AlertRuleRecord]:
        """The enabled rules ``event`` matches: its name, and the rule's workflow and task name filters if set."""
        return [rule for rule in self.current() if self._matches(rule, event)]

    def workflow_name(self, workflow_id: str | None) -> str | None:
        """The name of the workflow ``workflow_id`` (remembered), or None if there is none."""
        if workflow_id is None:
            return None
        if workflow_id not in self._workflow_names:
            try:
                self._workflow_names[workflow_id] = self.store.get_workflow(workflow_id).name
            except UnifiedError:
                return None
        return self._workflow_names[workflow_id]

    def _matches(self, rule: AlertRuleRecord, event: dict[str, Any]) -> bool:
        if not rule.enabled or event["event"] not in rule.events:
            return False
        wid = event.get("workflow_id")
        if rule.workflow is not None and rule.workflow not in (wid, self.workflow_name(wid)):
            return False
        return rule.task_name is None or rule.task_name in (event.get("name"), event.get("task_id"))
