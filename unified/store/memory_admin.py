"""The memory store's records around the work itself: schedules and fires, alert rules and alerts, API keys, audit
log.

A mixin of :class:`unified.store.memory.MemoryStore`, sharing its lock; split out to keep each module small.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from unified.errors import NotFoundError, not_found
from unified.store.records import (
    AlertRecord,
    AlertRuleRecord,
    ApiKeyRecord,
    AuditRecord,
    FireRecord,
    ScheduleRecord,
    SlaWatchRecord,
)
from unified.store.yielding_lock import YieldingLock


class MemoryAdminRecords:
    """Schedules, fires, alert rules, alerts, API keys and the audit log, in dicts under the store's lock."""

    _lock: YieldingLock

    def _init_admin(self) -> None:
        self._schedules: dict[str, ScheduleRecord] = {}
        self._fires: dict[tuple[str, float], FireRecord] = {}
        self._rules: dict[str, AlertRuleRecord] = {}
        self._keys: dict[str, ApiKeyRecord] = {}
        self._audit: list[AuditRecord] = []
        self._queue_limits: dict[str, int] = {}
        self._alerts: dict[str, AlertRecord] = {}
        self._sla_watches: dict[tuple[str, str], SlaWatchRecord] = {}
        self._holders: dict[str, tuple[float, float | None]] = {}  # holder -> (expires_at, swept_at)

    # proofs of life of holding engines (see Store.renew_holder)
    def renew_holder(self, holder: str, until: float) -> bool:
        """Prove ``holder`` alive until ``until``; False if its proof was missing or swept (it is written anew)."""
        with self._lock:
            proof = self._holders.get(holder)
            self._holders[holder] = (until, None)
            return proof is not None and proof[1] is None

    def expired_holders(self, now: float, limit: int = 100) -> list[str]:
        """The holders whose proof of life expired before ``now`` (swept or not), the longest expired first."""
        with self._lock:
            expired = sorted((expires_at, h) for h, (expires_at, _) in self._holders.items() if expires_at < now)
            return [holder for _, holder in expired[:limit]]

    def sweep_holder(self, holder: str, now: float) -> bool:
        """Mark ``holder`` swept at ``now`` if its proof is still expired then; False if it was renewed or is gone."""
        with self._lock:
            proof = self._holders.get(holder)
            if proof is None or proof[0] >= now:
                return False
            self._holders[holder] = (proof[0], now)
            return True

    def drop_holder(self, holder: str, only_swept: bool = False) -> None:
        """Delete ``holder``'s proof; with ``only_swept``, only while it is marked swept."""
        with self._lock:
            proof = self._holders.get(holder)
            if proof is not None and (not only_swept or proof[1] is not None):
                del self._holders[holder]

    # alert rules
    def put_alert_rule(self, rule: AlertRuleRecord) -> None:
        """Insert or replace an alert rule."""
        with self._lock:
            self._rules[rule.rule_id] = copy.deepcopy(rule)

    def list_alert_rules(self) -> list[AlertRuleRecord]:
        """Every alert rule, oldest first."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._rules.values()]

    def delete_alert_rule(self, rule_id: str) -> None:
        """Remove an alert rule."""
        with self._lock:
            if self._rules.pop(rule_id, None) is None:
                raise not_found(f"alert rule with id {rule_id!r}")

    # schedules
    def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace a schedule."""
        with self._lock:
            self._schedules[schedule.schedule_id] = copy.deepcopy(schedule)

    def _schedule(self, schedule_id: str) -> ScheduleRecord:
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            raise not_found(f"schedule with id {schedule_id!r}")
        return schedule

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        """The schedule with this id."""
        with self._lock:
            return copy.deepcopy(self._schedule(schedule_id))

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, oldest first."""
        with self._lock:
            return [copy.deepcopy(s) for s in self._schedules.values()]

    def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        """Set fields of a schedule."""
        with self._lock:
            schedule = self._schedule(schedule_id)
            for name, value in changes.items():
                setattr(schedule, name, copy.deepcopy(value))

    def delete_schedule(self, schedule_id: str) -> None:
        """Remove a schedule; its fires stay."""
        with self._lock:
            self._schedule(schedule_id)
            del self._schedules[schedule_id]

    def due_schedules(self, now: float, limit: int = 100) -> list[ScheduleRecord]:
        """Unpaused schedules due at ``now``, earliest first."""
        with self._lock:
            due = [
                s
                for s in self._schedules.values()
                if not s.paused and s.next_fire_at is not None and s.next_fire_at <= now
            ]
            due.sort(key=lambda s: s.next_fire_at)  # type: ignore[arg-type, return-value]
            return [copy.deepcopy(s) for s in due[:limit]]

    def next_schedule_fire(self) -> float | None:
        """The earliest next fire among unpaused schedules."""
        with self._lock:
            times = [s.next_fire_at for s in self._schedules.values() if not s.paused and s.next_fire_at is not None]
            return min(times, default=None)

    def insert_fire(self, fire: FireRecord) -> bool:
        """Record a fire once."""
        with self._lock:
            key = (fire.schedule_id, fire.fire_time)
            if key in self._fires:
                return False
            self._fires[key] = copy.deepcopy(fire)
            return True

    def update_fire(
        self, schedule_id: str, fire_time: float, expected_state: str | None = None, **changes: Any
    ) -> bool:
        """Set fields of a fire (only if it is in ``expected_state``, when given)."""
        with self._lock:
            fire = self._fires.get((schedule_id, fire_time))
            if fire is None:
                raise NotFoundError(f"schedule {schedule_id!r} has no fire at {fire_time}")
            if expected_state is not None and fire.state != expected_state:
                return False
            for name, value in changes.items():
                setattr(fire, name, value)
            return True

    def queued_fires(self, limit: int = 100) -> list[FireRecord]:
        """Fires waiting for a free run, oldest first."""
        with self._lock:
            queued = sorted((f for f in self._fires.values() if f.state == "queued"), key=lambda f: f.fire_time)
            return [copy.deepcopy(f) for f in queued[:limit]]

    def list_fires(self, schedule_id: str, limit: int = 100) -> list[FireRecord]:
        """Fires of a schedule, newest first."""
        with self._lock:
            fires = [f for (sid, _), f in self._fires.items() if sid == schedule_id]
            fires.sort(key=lambda f: f.fire_time, reverse=True)
            return [copy.deepcopy(f) for f in fires[:limit]]

    # api keys and audit
    def put_api_key(self, key: ApiKeyRecord) -> None:
        """Insert or replace an API key."""
        with self._lock:
            self._keys[key.key_id] = copy.deepcopy(key)

    def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The API key with this id."""
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                raise not_found(f"API key with id {key_id!r}")
            return copy.deepcopy(key)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, oldest first."""
        with self._lock:
            return [copy.deepcopy(k) for k in self._keys.values()]

    def lock_api_keys(self) -> list[ApiKeyRecord]:
        """As :meth:`list_api_keys`: atomic() already holds the one lock."""
        return self.list_api_keys()

    def update_api_key(self, key_id: str, **changes: Any) -> None:
        """Set fields of an API key."""
        self._set_fields(self._keys, key_id, "API key", changes)

    def insert_audit(self, entry: AuditRecord) -> None:
        """Append to the audit log."""
        with self._lock:
            self._audit.append(copy.deepcopy(entry))

    def list_audit(self, limit: int = 100, offset: int = 0) -> list[AuditRecord]:
        """Audit entries, newest first."""
        with self._lock:
            newest = list(reversed(self._audit))
            return [copy.deepcopy(a) for a in newest[offset : offset + limit]]

    # queue limits (the claim honours them)
    def set_queue_limit(self, queue: str, max_running: int | None) -> None:
        """Let at most ``max_running`` tasks of ``queue`` run at once; None removes the limit."""
        with self._lock:
            if max_running is None:
                self._queue_limits.pop(queue, None)
            else:
                self._queue_limits[queue] = max_running

    def queue_limits(self) -> dict[str, int]:
        """Every queue limit: queue name -> max_running."""
        with self._lock:
            return dict(sorted(self._queue_limits.items()))

    # alerts
    def insert_alert(self, alert: AlertRecord) -> None:
        """Store an alert."""
        with self._lock:
            self._alerts[alert.alert_id] = copy.deepcopy(alert)

    def update_alert(self, alert_id: str, **changes: Any) -> None:
        """Set the delivery fields of an alert."""
        self._set_fields(self._alerts, alert_id, "alert", changes)

    def _set_fields(self, records: dict[str, Any], key: str, what: str, changes: dict[str, Any]) -> None:
        with self._lock:
            record = records.get(key)
            if record is None:
                raise not_found(f"{what} with id {key!r}")
            for name, value in changes.items():
                setattr(record, name, value)

    def list_alerts(self, limit: int = 100, status: str | None = None) -> list[AlertRecord]:
        """Alerts, newest first; only those whose delivery is ``status`` when given."""
        with self._lock:
            found = [a for a in self._alerts.values() if status is None or a.status == status]
            alerts = sorted(found, key=lambda a: a.created_at, reverse=True)
            return [copy.deepcopy(a) for a in alerts[:limit]]

    def take_alerts(self, owner: str, now: float, until: float, limit: int = 100) -> list[AlertRecord]:
        """Lease to ``owner`` the pending alerts whose lease expired before ``now``, the longest expired first."""
        with self._lock:
            pending = [a for a in self._alerts.values() if a.status == "pending" and a.lease_expires_at is not None]
            lapsed = [a for a in pending if a.lease_expires_at < now]  # type: ignore[operator]
            lapsed.sort(key=lambda a: a.lease_expires_at)  # type: ignore[arg-type, return-value]
            for alert in lapsed[:limit]:
                alert.owner, alert.lease_expires_at = owner, until
            return [copy.deepcopy(a) for a in lapsed[:limit]]

    def renew_alerts(self, owner: str, until: float, alert_ids: Iterable[str]) -> int:
        """Extend the leases of those of ``alert_ids`` pending and leased to ``owner``; how many there were."""
        with self._lock:
            found = (self._alerts.get(alert_id) for alert_id in set(alert_ids))
            held = [a for a in found if a is not None and a.status == "pending" and a.owner == owner]
            for alert in held:
                alert.lease_expires_at = until
            return len(held)

    def update_owned_alert(self, alert_id: str, owner: str, /, **changes: Any) -> bool:
        """Set fields of an alert only while it is pending and leased to ``owner``; True if it changed."""
        with self._lock:
            alert = self._alerts.get(alert_id)
            if alert is None:
                raise not_found(f"alert with id {alert_id!r}")
            if alert.status != "pending" or alert.owner != owner:
                return False
            self._set_fields(self._alerts, alert_id, "alert", changes)
            return True

    # SLA watches
    def insert_sla_watches(self, watches: Iterable[SlaWatchRecord]) -> None:
        """Store deadlines to watch; one already stored is left as it is."""
        with self._lock:
            for watch in watches:
                self._sla_watches.setdefault((watch.kind, watch.key), copy.copy(watch))

    def due_sla_watches(self, now: float, limit: int = 100) -> list[SlaWatchRecord]:
        """Unsettled watches due at ``now``, earliest first."""
        with self._lock:
            due = sorted((w for w in self._sla_watches.values() if w.outcome is None and w.deadline <= now),
                         key=lambda w: w.deadline)  # fmt: skip
            return [copy.copy(w) for w in due[:limit]]

    def settle_sla_watch(self, kind: str, key: str, outcome: str, at: float) -> bool:
        """Set the outcome of a watch if it has none yet; True if this call did."""
        with self._lock:
            watch = self._sla_watches.get((kind, key))
            if watch is None or watch.outcome is not None:
                return False
            watch.outcome, watch.settled_at = outcome, at
            return True

    def next_sla_deadline(self) -> float | None:
        """The earliest deadline among unsettled watches."""
        with self._lock:
            return min((w.deadline for w in self._sla_watches.values() if w.outcome is None), default=None)
