"""Alerts: rules that route engine events to channels, a bounded background sender, and SLA watching.

An :class:`AlertService` listens on the engine's event bus. Each event that matches a stored rule becomes an
alert: it is stored as ``pending`` and put on its channel's bounded queue, and that channel's sender thread
delivers it, retrying with backoff, then records it ``sent`` or ``failed`` with the error (a channel that does not
answer delays only its own alerts). Nothing here blocks or breaks the engine: a full queue, a broken channel or a
failing store is recorded or logged. Alerts still queued when the service closes are recorded ``failed``.

SLA: a task or run that declares ``sla_seconds`` and has not finished that long after it was queued raises
one ``sla_missed`` event (published on the same bus, so rules and handlers see it like any other event).
"""

from __future__ import annotations

import heapq
import json
import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from unified import events as ev
from unified.channels import (
    Channel,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
    channel_from_config,
    summary,
    verify_signature,
)
from unified.engine import Engine
from unified.errors import UnifiedError, ValidationError
from unified.store.records import AlertRecord, AlertRuleRecord, RunRecord, TaskRecord
from unified.utils import backoff_delay, iso, new_id

log = logging.getLogger("unified.alerts")

ALERT_EVENTS = (
    ev.TASK_FAILED, ev.TASK_TIMEOUT, ev.TASK_RETRYING, ev.WORKFLOW_FAILED, ev.WORKFLOW_SUCCEEDED,
    ev.SCHEDULE_MISSED, ev.SLA_MISSED,
)  # fmt: skip
ALERT_STATUSES = ("pending", "sent", "failed")  # an alert's delivery: queued, delivered, given up on
_STOP = object()


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


class AlertService:
    """Matches events against the stored rules and delivers alerts from a bounded background queue."""

    def __init__(
        self,
        engine: Engine,
        *,
        queue_size: int = 1000,
        max_attempts: int = 3,
        retry_delay_seconds: float = 1.0,
        max_retry_delay_seconds: float = 30.0,
        rules_cache_seconds: float = 5.0,
        sla_thread: bool = True,
    ) -> None:
        if max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, not {max_attempts}")
        self.engine, self.store, self.clock = engine, engine.store, engine.clock
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self.max_retry_delay_seconds = max_retry_delay_seconds
        self.rules_cache_seconds = rules_cache_seconds  # how soon rules edited by another process are seen
        self.queue_size = queue_size  # of each channel's queue
        self._lanes: dict[str, tuple[queue.Queue[Any], threading.Thread]] = {}  # by channel config: queue, sender
        self._pending = 0  # alerts queued or being delivered
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._rules: list[AlertRuleRecord] | None = None
        self._rule_events: frozenset[str] = frozenset()  # the events the enabled rules name
        self._rules_read_at = 0.0
        self._workflow_names: dict[str, str] = {}
        self.sla = SlaWatch(engine, threaded=sla_thread)
        engine.bus.subscribe(self.handle, accepts=self._accepts)

    # -- rules -------------------------------------------------------------------------------------------
    def add_rule(
        self,
        events: Iterable[str] | str,
        channel: Channel | dict[str, Any],
        workflow: str | None = None,
        task_name: str | None = None,
    ) -> str:
        """Send the named events (optionally only of one workflow id or name, or task name) to ``channel``."""
        config = channel_from_config(channel).config() if isinstance(channel, dict) else channel.config()
        rule = AlertRuleRecord(new_id(), check_events(events), config, workflow, task_name, True, self.clock.now())
        self.store.put_alert_rule(rule)
        self._rules = None
        return rule.rule_id

    def remove_rule(self, rule_id: str) -> None:
        """Delete an alert rule; alerts it raised stay listed."""
        self.store.delete_alert_rule(rule_id)
        self._rules = None

    def list_rules(self) -> list[dict[str, Any]]:
        """Every rule: id, events, channel config, filters, enabled, created_at."""
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

    def list_alerts(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first, each with its delivery status, attempts and error; only ``status`` ones if given."""
        if status is not None and status not in ALERT_STATUSES:
            raise ValidationError(f"{status!r} is not an alert status: filter by one of {', '.join(ALERT_STATUSES)}")
        return [alert_dict(a) for a in self.store.list_alerts(limit, status)]

    def _current_rules(self) -> list[AlertRuleRecord]:
        if self._rules is None or time.monotonic() - self._rules_read_at > self.rules_cache_seconds:
            rules = self.store.list_alert_rules()
            self._rule_events = frozenset(name for rule in rules if rule.enabled for name in rule.events)
            self._rules, self._rules_read_at = rules, time.monotonic()
        return self._rules

    def _accepts(self, name: str) -> bool:
        """Whether an enabled rule names this event: with none, the engine builds no event for the alerts."""
        self._current_rules()
        return name in self._rule_events

    def _workflow_name(self, workflow_id: str | None) -> str | None:
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
        if rule.workflow is not None and rule.workflow not in (wid, self._workflow_name(wid)):
            return False
        return rule.task_name is None or rule.task_name in (event.get("name"), event.get("task_id"))

    # -- raising -----------------------------------------------------------------------------------------
    def handle(self, event: dict[str, Any]) -> None:
        """Turn ``event`` into one stored, queued alert per matching rule (called by the event bus)."""
        for rule in self._current_rules():
            if self._matches(rule, event):
                self._raise(rule, event)

    def _raise(self, rule: AlertRuleRecord, event: dict[str, Any]) -> None:
        now = self.clock.now()
        alert = {**event, "at": iso(event.get("at")), "workflow_name": self._workflow_name(event.get("workflow_id"))}
        alert.update(alert_id=new_id(), rule_id=rule.rule_id, created_at=iso(now))
        alert["summary"] = summary(alert)
        alert = json.loads(json.dumps(alert, default=str))
        record = AlertRecord(alert["alert_id"], event["event"], alert, now, rule.channel.get("type", "?"), "pending",
                             rule_id=rule.rule_id)  # fmt: skip
        self.store.insert_alert(record)
        with self._idle:
            self._pending += 1
        lane = self._lane(rule.channel)
        try:
            if lane is None:
                raise queue.Full
            lane.put_nowait((record.alert_id, rule.channel, alert))
        except queue.Full:
            self._done()
            error = (f"the alert queue of this channel is full ({self.queue_size} waiting); this alert was not sent"
                     if lane is not None else "the alert service has stopped; this alert was not sent")  # fmt: skip
            log.error("alert %s dropped: %s", record.alert_id, error)
            self.store.update_alert(record.alert_id, status="failed", error=error)

    # -- delivering --------------------------------------------------------------------------------------
    def _lane(self, config: dict[str, Any]) -> queue.Queue[Any] | None:
        """The queue of one channel, its sender thread started on first use; None once the service stops."""
        key = json.dumps(config, sort_keys=True)
        with self._lock:
            if self._stopping.is_set():
                return None
            if key not in self._lanes:
                lane: queue.Queue[Any] = queue.Queue(self.queue_size)
                sender = threading.Thread(target=self._send_loop, args=(lane,), name="unified-alerts", daemon=True)
                self._lanes[key] = (lane, sender)
                sender.start()
            return self._lanes[key][0]

    def _send_loop(self, lane: queue.Queue[Any]) -> None:
        while True:
            item = lane.get()
            if item is _STOP:
                return
            try:
                self.deliver(*item)
            except Exception:
                log.exception("alert %s: recording its delivery failed", item[0])
            finally:
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def deliver(self, alert_id: str, config: dict[str, Any], alert: dict[str, Any]) -> bool:
        """Send one alert, retrying with backoff, and record the outcome; True if it was delivered."""
        error = "not attempted"
        attempts = 0
        try:
            channel = channel_from_config(config)
        except ValidationError as exc:
            channel, error = None, str(exc)
        while channel is not None and attempts < self.max_attempts:
            attempts += 1
            try:
                channel.send(alert)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("alert %s via %s, attempt %d of %d: %s", alert_id, channel.type, attempts,
                            self.max_attempts, error)  # fmt: skip
            else:
                self.store.update_alert(alert_id, status="sent", attempts=attempts, error=None,
                                        delivered_at=self.clock.now())  # fmt: skip
                return True
            delay = backoff_delay(attempts, self.retry_delay_seconds, 2.0, self.max_retry_delay_seconds)
            if attempts < self.max_attempts and self._stopping.wait(delay):
                error += " (gave up at shutdown)"
                break
        log.error("alert %s could not be delivered after %d attempt(s): %s", alert_id, attempts, error)
        self.store.update_alert(alert_id, status="failed", attempts=attempts, error=error)
        return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was delivered or failed; False if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the senders and the SLA watch; alerts still
        queued then are recorded ``failed`` (a delivery under way gives up between its attempts)."""
        self.flush(timeout)
        with self._lock:
            self._stopping.set()
            lanes, self._lanes = list(self._lanes.values()), {}
        self.sla.stop()
        for lane, _ in lanes:
            while True:
                try:
                    item = lane.get_nowait()
                except queue.Empty:
                    break
                self.store.update_alert(item[0], status="failed", error="not sent: the alert service stopped first")
                self._done()
            lane.put(_STOP)
        for _, sender in lanes:
            sender.join(timeout)


class SlaWatch:
    """Raises ``sla_missed`` once for each task or run still unfinished ``sla_seconds`` after it was queued."""

    def __init__(self, engine: Engine, threaded: bool = True) -> None:
        self.engine = engine
        self.threaded = threaded  # False: call check() (the manager does on every fake-clock advance)
        self._heap: list[tuple[float, str, str, float]] = []  # (deadline, kind, id, sla_seconds)
        self._runs_seen: dict[str, None] = {}  # runs whose SLA is tracked or done (insertion-ordered, capped)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        engine.on_submitted(self.watch)
        engine.clock.on_advance(self._wake)

    def watch(self, records: list[TaskRecord], run: RunRecord | None) -> None:
        """Track the SLAs of newly submitted tasks and of their run (an ``Engine.on_submitted`` listener)."""
        entries = [(r.created_at + r.spec["sla_seconds"], "task", r.id, r.spec["sla_seconds"])
                   for r in records if r.spec.get("sla_seconds")]  # fmt: skip
        sla = run.metadata.get("sla_seconds") if run is not None else None
        if run is not None and sla and run.run_id not in self._runs_seen:
            self._runs_seen[run.run_id] = None
            if len(self._runs_seen) > 100_000:
                del self._runs_seen[next(iter(self._runs_seen))]
            entries.append((run.created_at + float(sla), "run", run.run_id, float(sla)))
        if not entries:
            return
        with self._cond:
            for entry in entries:
                heapq.heappush(self._heap, entry)
            self._cond.notify_all()
        if self.threaded and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="unified-sla", daemon=True)
            self._thread.start()

    def check(self) -> int:
        """Raise sla_missed for every deadline that passed with its task or run unfinished; returns how many."""
        now = self.engine.clock.now()
        due = []
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap))
        return sum(self._check_one(*entry, now) for entry in due)

    def _check_one(self, deadline: float, kind: str, key: str, sla: float, now: float) -> bool:
        store = self.engine.store
        try:
            if kind == "task":
                record = store.get_task(key)
                if record.finished_at is not None:
                    return False
                run = store.get_run(record.run_id) if record.run_id else None
                ids = {"task_id": record.task_id, "id": record.id, "run_id": record.run_id, "name": record.name,
                       "state": record.state, "attempt": record.attempts}  # fmt: skip
            else:
                run = store.get_run(key)
                if run.finished_at is not None:
                    return False
                ids = {"task_id": None, "id": None, "run_id": run.run_id, "name": None, "state": run.state,
                       "attempt": None}  # fmt: skip
        except UnifiedError:
            return False  # deleted, or never committed
        what = f"{kind} {ids['name'] or key!r}"
        message = f"{what} had not finished {sla:g} s after it was queued"
        self.engine.bus.publish(
            {"event": ev.SLA_MISSED, **ids, "workflow_id": run.workflow_id if run else None, "at": now,
             "error": {"type": "SlaMissed", "message": message}, "sla_seconds": sla, "deadline": iso(deadline)}
        )  # fmt: skip
        log.warning("%s", message)
        return True

    def _wake(self) -> None:
        if self.threaded:
            with self._cond:
                self._cond.notify_all()
        else:
            self.check()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.check()
            except Exception:
                log.exception("SLA check failed; trying again shortly")
            with self._cond:
                wait = 60.0 if not self._heap else self._heap[0][0] - self.engine.clock.now()
                if wait > 0 and not self._stopping.is_set():
                    self._cond.wait(min(wait, 60.0))

    def stop(self) -> None:
        """Stop the background checks."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


__all__ = [
    "ALERT_EVENTS",
    "AlertService",
    "Channel",
    "EmailChannel",
    "LogChannel",
    "SlaWatch",
    "SlackChannel",
    "WebhookChannel",
    "channel_from_config",
    "verify_signature",
]
