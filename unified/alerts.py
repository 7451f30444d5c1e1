"""Alerts: rules that route engine events to channels, a bounded background sender, leases, and SLA watching.

An :class:`AlertService` listens on the engine's event bus. Each event that matches a stored rule becomes an
alert: it is stored as ``pending``, leased to this service, and put on its channel's bounded queue, and that
channel's sender thread delivers it, then records it ``sent``, or ``failed`` with the error once ``max_attempts``
were made (a channel that does not answer delays only its own alerts). Retries back off exponentially over minutes:
between attempts the alert waits in the store (pending, leased to nobody, due at its next attempt), not in the
sender, so the channel's other alerts go on and a restart loses nothing. Nothing here blocks or breaks the engine: a
full queue, a broken channel or a failing store is recorded or logged.

Leases make delivery outlive the process: the service's keeper renews the leases of the alerts it holds, and takes
over (by compare-and-set, ``Store.take_alerts``) the pending alerts whose lease lapsed, because the process holding
them died or closed with them still queued. Two live services never both send an alert while their leases are
renewed; an alert whose process died mid-delivery may be sent twice (at least once).

SLA: a task or run that declares ``sla_seconds`` and has not finished that long after it was queued raises one
``sla_missed`` event (see :mod:`unified.sla`; the keeper runs its checks).
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from unified.alert_rules import ALERT_EVENTS, AlertRules, list_alerts
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
from unified.errors import ValidationError
from unified.sla import SlaWatch
from unified.store.records import AlertRecord, AlertRuleRecord
from unified.utils import backoff_delay, iso, new_id

log = logging.getLogger("unified.alerts")

_STOP = object()


class AlertService:
    """Matches events against the stored rules and delivers alerts from a bounded background queue."""

    def __init__(
        self,
        engine: Engine,
        *,
        queue_size: int = 1000,
        max_attempts: int = 10,
        retry_delay_seconds: float = 2.0,
        max_retry_delay_seconds: float = 300.0,
        inline_retry_seconds: float = 0.5,
        rules_cache_seconds: float = 5.0,
        lease_seconds: float = 60.0,
        threaded: bool = True,
    ) -> None:
        """A failed delivery is tried again after ``retry_delay_seconds``, doubling up to ``max_retry_delay_seconds``,
        ``max_attempts`` times in all (by default about 13 minutes from the first attempt to the last). A wait up to
        ``inline_retry_seconds`` is taken in the channel's sender; a longer one parks the alert in the store, where
        any process's keeper takes it up when it is due, so other alerts of the channel go on meanwhile and a
        restart does not lose it. ``lease_seconds``: how long a pending alert stays this service's without a renewal
        (renewed every third of it); another process takes it over once it lapses. ``threaded=False``: no keeper
        thread, the caller calls :meth:`keep` (a manager on a fake clock does on every advance)."""
        if max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, not {max_attempts}")
        if not lease_seconds > 0:
            raise ValidationError(f"lease_seconds must be positive, not {lease_seconds}: it is how long a process "
                                  "holds a pending alert before another one may take it over")  # fmt: skip
        self.engine, self.store, self.clock = engine, engine.store, engine.clock
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self.max_retry_delay_seconds = max_retry_delay_seconds
        self.inline_retry_seconds = inline_retry_seconds
        self._retries: dict[str, float] = {}  # alerts this service parked for a later attempt: id -> when
        self.queue_size = queue_size  # of each channel's queue
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"  # the leases of this service
        self._held: set[str] = set()  # the alerts leased to this service and in its lanes (queued or being sent)
        self._lanes: dict[str, tuple[queue.Queue[Any], threading.Thread]] = {}  # by channel config: queue, sender
        self._pending = 0  # alerts queued or being delivered
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.rules = AlertRules(self.store, self.clock, rules_cache_seconds)
        self.sla = SlaWatch(engine)
        engine.bus.subscribe(self.handle, accepts=self.rules.accepts)
        self._wake = threading.Event()
        self._keeper: threading.Thread | None = None
        if threaded:
            self.sla.on_sooner = self._wake.set
            self._keeper = threading.Thread(target=self._keep_loop, name="unified-alerts-keeper", daemon=True)
            self._keeper.start()
        else:
            engine.clock.on_advance(self.keep)

    # -- rules (kept by AlertRules) -----------------------------------------------------------------------
    def add_rule(
        self,
        events: Iterable[str] | str,
        channel: Channel | dict[str, Any],
        workflow: str | None = None,
        task_name: str | None = None,
    ) -> str:
        """Send the named events (optionally only of one workflow id or name, or task name) to ``channel``."""
        return self.rules.add(events, channel, workflow, task_name)

    def remove_rule(self, rule_id: str) -> None:
        """Delete an alert rule; alerts it raised stay listed."""
        self.rules.remove(rule_id)

    def list_rules(self) -> list[dict[str, Any]]:
        """Every rule: id, events, channel config, filters, enabled, created_at."""
        return self.rules.listed()

    def list_alerts(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first, each with its delivery status, attempts and error; only ``status`` ones if given."""
        return list_alerts(self.store, limit, status)

    # -- raising -----------------------------------------------------------------------------------------
    def handle(self, event: dict[str, Any]) -> None:
        """Turn ``event`` into one stored, queued alert per matching rule (called by the event bus)."""
        for rule in self.rules.matching(event):
            self._raise(rule, event)

    def _raise(self, rule: AlertRuleRecord, event: dict[str, Any]) -> None:
        now = self.clock.now()
        workflow_name = self.rules.workflow_name(event.get("workflow_id"))
        alert = {**event, "at": iso(event.get("at")), "workflow_name": workflow_name}
        alert.update(alert_id=new_id(), rule_id=rule.rule_id, created_at=iso(now))
        alert["summary"] = summary(alert)
        alert = json.loads(json.dumps(alert, default=str))
        lease = now + self.lease_seconds
        record = AlertRecord(alert["alert_id"], event["event"], alert, now, rule.channel.get("type", "?"), "pending",
                             rule_id=rule.rule_id, owner=self.owner, lease_expires_at=lease)  # fmt: skip
        self._held.add(record.alert_id)  # before it is stored: the keeper renews what it holds
        try:
            self.store.insert_alert(record)
        except BaseException:
            self._held.discard(record.alert_id)
            raise
        self._enqueue(record.alert_id, rule.channel, alert, 0)

    def _enqueue(self, alert_id: str, config: dict[str, Any], alert: dict[str, Any], attempts: int) -> None:
        """Put a held alert on its channel's queue; a full queue records it failed, a stopped service hands it back
        (leased to nobody, its lease lapsed) for another process."""
        with self._idle:
            self._pending += 1
        lane = self._lane(config)
        try:
            if lane is None:
                self._done(alert_id)
                log.warning("alert %s: left for another process (this alert service has stopped)", alert_id)
                self._record(alert_id, owner=None, lease_expires_at=self.clock.now())
                return
            lane.put_nowait((alert_id, config, alert, attempts))
        except queue.Full:
            self._done(alert_id)
            error = f"the alert queue of this channel is full ({self.queue_size} waiting); this alert was not sent"
            log.error("alert %s dropped: %s", alert_id, error)
            self._record(alert_id, status="failed", error=error)

    def _record(self, alert_id: str, **changes: Any) -> bool:
        """Write the outcome of an alert this service holds; False (and logged) if another process took it over."""
        if self.store.update_owned_alert(alert_id, self.owner, **changes):
            return True
        log.warning("alert %s was taken over by another process (this one's lease lapsed): that one records it",
                    alert_id)  # fmt: skip
        return False

    # -- leases ------------------------------------------------------------------------------------------
    def keep(self) -> int:
        """Check SLA deadlines, renew the leases of the alerts this service holds, and take over the pending alerts
        whose lease lapsed (their process died); returns how many were taken over. The keeper thread does the same,
        the SLA checks when a deadline is due (every ``SlaWatch.poll_seconds`` at most), the rest every third of
        ``lease_seconds``. Once the service is closed it does nothing (a fake clock shared with other managers still
        calls it on each advance)."""
        if self._stopping.is_set():
            return 0
        self._attempt(self.sla.check, "an SLA check")  # a failing one must not stop the leases being kept
        return self._keep_leases()

    @staticmethod
    def _attempt(check: Callable[[], object], what: str) -> bool:
        """Run one of the keeper's checks, logging (not raising) its failure; False if it failed."""
        try:
            check()
        except Exception:
            log.exception("alert keeper: %s failed; trying again shortly", what)
            return False
        return True

    def _keep_leases(self) -> int:
        now = self.clock.now()
        with self._lock:  # those due have lapsed leases: taken below, unless another process took them first
            self._retries = {alert_id: due for alert_id, due in self._retries.items() if due >= now}
        if self._held:
            self.store.renew_alerts(self.owner, now + self.lease_seconds, list(self._held))
        return self.take_over(now)

    def take_over(self, now: float | None = None) -> int:
        """Lease to this service the pending alerts whose lease lapsed before ``now`` (default: the clock's) and queue
        them for delivery; how many were taken. An alert whose rule was deleted is recorded failed. No more are taken
        than the fullest channel queue has room for, so a taken alert is not dropped for a full queue: the rest wait
        in the store for a later round."""
        room = self.queue_size - self._fullest_lane()
        if self._stopping.is_set() or room <= 0:
            return 0
        now = self.clock.now() if now is None else now
        taken = self.store.take_alerts(self.owner, now, now + self.lease_seconds, room)
        if not taken:
            return 0
        rules = {rule.rule_id: rule for rule in self.store.list_alert_rules()}
        for record in taken:
            if record.alert_id in self._held:
                continue  # in a lane here already: this process was too slow to renew, and now holds it again
            rule = rules.get(record.rule_id or "")
            self._held.add(record.alert_id)
            if rule is None:
                self._record(record.alert_id, status="failed", error="not sent: its alert rule was deleted first")
                self._held.discard(record.alert_id)
                continue
            log.warning("alert %s: taking over its delivery (the lease of the process that raised it lapsed)",
                        record.alert_id)  # fmt: skip
            self._enqueue(record.alert_id, rule.channel, record.payload, record.attempts)
        return len(taken)

    def _fullest_lane(self) -> int:
        """How many alerts wait in this service's fullest channel queue."""
        with self._lock:
            return max((lane.qsize() for lane, _ in self._lanes.values()), default=0)

    def _keep_loop(self) -> None:
        leases_due = 0.0  # time.monotonic() of the next renewal and takeover
        while True:
            self._wake.clear()
            if self._stopping.is_set():  # checked after the clear, which undoes the wake of a close() just before it
                return
            # each check on its own: SLA deadlines that cannot be read must not let the leases lapse (double sends)
            failed = not self._attempt(self.sla.check, "an SLA check")
            if time.monotonic() >= leases_due or self._retry_in() <= 0:
                if self._attempt(self._keep_leases, "renewing and taking over alert leases"):
                    leases_due = time.monotonic() + self.lease_seconds / 3
                else:
                    failed = True
            wait = min(leases_due - time.monotonic(), self.sla.seconds_to_next(), self._retry_in())
            self._wake.wait(1.0 if failed else max(0.0, wait))

    def _retry_in(self) -> float:
        """Seconds until the first alert this service parked is due (its lease lapses strictly after ``due``)."""
        with self._lock:
            soonest = min(self._retries.values(), default=math.inf)
        return soonest - self.clock.now() + 0.001

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
                self._done(item[0])

    def _done(self, alert_id: str) -> None:
        self._held.discard(alert_id)
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def deliver(self, alert_id: str, config: dict[str, Any], alert: dict[str, Any], attempts: int = 0) -> bool:
        """Send one alert this service holds and record the outcome; True if it was delivered. ``attempts``: those
        made before (by this service or another), counted against ``max_attempts``.

        A failed attempt with attempts left is tried again: after a short wait (up to ``inline_retry_seconds``) here,
        else the alert is parked (see :meth:`_park`). Interrupted by :meth:`close`, it hands the alert back for
        another process."""
        try:
            channel = channel_from_config(config)
        except ValidationError as exc:
            return self._give_up(alert_id, attempts, str(exc))
        while True:
            attempts += 1
            try:
                channel.send(alert)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("alert %s via %s, attempt %d of %d: %s", alert_id, channel.type, attempts,
                            self.max_attempts, error)  # fmt: skip
            else:
                self._record(alert_id, status="sent", attempts=attempts, error=None, delivered_at=self.clock.now())
                return True
            if attempts >= self.max_attempts:
                return self._give_up(alert_id, attempts, error)
            delay = backoff_delay(attempts, self.retry_delay_seconds, 2.0, self.max_retry_delay_seconds)
            if delay > self.inline_retry_seconds:
                self._park(alert_id, attempts, error, delay)
                return False
            if self._stopping.wait(delay):
                self._park(alert_id, attempts, error, 0.0)  # handed back: another process goes on with it
                return False

    def _give_up(self, alert_id: str, attempts: int, error: str) -> bool:
        log.error("alert %s could not be delivered after %d attempt(s): %s", alert_id, attempts, error)
        self._record(alert_id, status="failed", attempts=attempts, error=error)
        return False

    def _park(self, alert_id: str, attempts: int, error: str, delay: float) -> None:
        """Leave an alert for an attempt ``delay`` seconds from now: pending, leased to nobody, its lease expiring
        then, so the first keeper to look after that (this one's, woken for it, or any other process's) takes it."""
        due = self.clock.now() + delay
        if self._record(alert_id, attempts=attempts, error=error, owner=None, lease_expires_at=due):
            if delay > 0:
                log.warning("alert %s: attempt %d of %d in %.0f s", alert_id, attempts + 1, self.max_attempts, delay)
            with self._lock:
                self._retries[alert_id] = due
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was delivered, failed or parked for a later attempt; False if ``timeout``
        seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the senders and the keeper. Alerts still
        queued then are handed back: they stay ``pending`` with their lease lapsed, and the alert service of another
        process (or of this one's next start) delivers them. A delivery under way hands its alert back between its
        attempts."""
        self.flush(timeout)
        with self._lock:
            self._stopping.set()
            lanes, self._lanes = list(self._lanes.values()), {}
        self._wake.set()
        for lane, _ in lanes:
            while True:
                try:
                    item = lane.get_nowait()
                except queue.Empty:
                    break
                try:
                    self._record(item[0], owner=None, lease_expires_at=self.clock.now())
                finally:
                    self._done(item[0])
            lane.put(_STOP)
        for _, sender in lanes:
            sender.join(timeout)
        if self._keeper is not None:
            self._keeper.join(timeout)
            self._keeper = None


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
