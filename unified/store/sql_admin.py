"""The SQL store's records around the work itself: schedules and fires, alert rules, API keys, audit log, queue
limits (alerts and SLA watches are in ``sql_alerts.py``).

A mixin of :class:`unified.store.sql.SqlStore`, using its transaction and row helpers; split out to keep each module
small, as ``memory_admin.py`` is from ``memory.py``. A fire is written with ``INSERT ... ON CONFLICT DO NOTHING`` on
the (schedule_id, fire_time) primary key, so of several schedulers on one database exactly one records each fire.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from unified.store.records import AlertRuleRecord, ApiKeyRecord, AuditRecord, FireRecord, ScheduleRecord
from unified.store.schema import (
    ALERT_RULES,
    API_KEYS,
    AUDIT,
    FIRES,
    QUEUE_LIMITS,
    SCHEDULES,
    Codec,
    queue_limits,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert

    from unified.store.sql_wakeups import LimitsSeen


class SqlAdminRecords:
    """Schedules, fires, alert rules, API keys, the audit log and queue limits, as rows of their tables."""

    if TYPE_CHECKING:  # provided by SqlStore
        _limits_seen: LimitsSeen

        def _wake(self, *, limits: Iterable[str] = ()) -> None: ...
        def _upsert_insert(self, table: sa.Table) -> Insert: ...
        def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]: ...
        def _one(self, codec: Codec[Any], what: str, stmt: sa.Select[Any], params: dict[str, Any]) -> Any: ...
        def _all(self, codec: Codec[Any], stmt: sa.Select[Any]) -> list[Any]: ...
        def _insert(self, codec: Codec[Any], rows: list[dict[str, Any]], duplicate: str, parent: str = "") -> None: ...
        def _update(
            self, codec: Codec[Any], where: dict[str, Any], keys: int, values: dict[str, Any], what: str
        ) -> bool: ...
        def _cas(self, codec: Codec[Any], key: str, expected_state: str | None, changes: dict[str, Any]) -> bool: ...
        def _upsert(self, codec: Codec[Any], record: Any) -> None: ...
        def _one_row(
            self, codec: Codec[Any], key: str, what: str, stmt: sa.Update | sa.Delete | None = None
        ) -> None: ...

    def _in_order(self, codec: Codec[Any]) -> list[Any]:
        """Every row of ``codec``'s table, in insertion order (a replaced row keeps its place)."""
        return self._all(codec, codec.select.order_by(codec.table.c.seq))

    # alert rules
    def put_alert_rule(self, rule: AlertRuleRecord) -> None:
        """Insert or replace an alert rule."""
        self._upsert(ALERT_RULES, rule)

    def list_alert_rules(self) -> list[AlertRuleRecord]:
        """Every alert rule, oldest first."""
        return self._in_order(ALERT_RULES)

    def delete_alert_rule(self, rule_id: str) -> None:
        """Remove an alert rule."""
        self._one_row(ALERT_RULES, rule_id, "alert rule")

    # schedules
    def put_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace a schedule."""
        self._upsert(SCHEDULES, schedule)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        """The schedule with this id."""
        return self._one(SCHEDULES, f"schedule {schedule_id!r}", SCHEDULES.by_key, {"_key": schedule_id})

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, oldest first."""
        return self._in_order(SCHEDULES)

    def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        """Set fields of a schedule."""
        self._cas(SCHEDULES, schedule_id, None, changes)

    def delete_schedule(self, schedule_id: str) -> None:
        """Remove a schedule (its fires stay as history)."""
        self._one_row(SCHEDULES, schedule_id, "schedule")

    def _unpaused(self) -> sa.ColumnElement[bool]:
        c = SCHEDULES.table.c
        return sa.and_(sa.not_(c.paused), c.next_fire_at.is_not(None))

    def due_schedules(self, now: float, limit: int = 100) -> list[ScheduleRecord]:
        """Unpaused schedules whose next_fire_at is at or before ``now``, earliest first."""
        c = SCHEDULES.table.c
        stmt = SCHEDULES.select.where(self._unpaused(), c.next_fire_at <= now)
        return self._all(SCHEDULES, stmt.order_by(c.next_fire_at, c.seq).limit(limit))

    def next_schedule_fire(self) -> float | None:
        """The earliest next_fire_at among unpaused schedules, or None."""
        with self._tx(write=False) as conn:
            return conn.execute(sa.select(sa.func.min(SCHEDULES.table.c.next_fire_at)).where(self._unpaused())).scalar()

    def insert_fire(self, fire: FireRecord) -> bool:
        """Record a fire; False (and nothing written) if that (schedule_id, fire_time) exists already."""
        table = FIRES.table
        stmt = (
            self._upsert_insert(table)
            .values(FIRES.row(fire))
            .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
            .returning(table.c.schedule_id)
        )
        with self._tx() as conn:
            return conn.execute(stmt).first() is not None

    def update_fire(
        self, schedule_id: str, fire_time: float, expected_state: str | None = None, **changes: Any
    ) -> bool:
        """Set fields of a fire (run_id, task_id, state, reason); only if it is in ``expected_state``, when given."""
        where: dict[str, Any] = {"schedule_id": schedule_id, "fire_time": fire_time}
        if expected_state is not None:
            where["state"] = expected_state
        what = f"fire at {fire_time} of schedule {schedule_id!r}"
        return self._update(FIRES, where, 2, FIRES.changes(changes, schedule_id), what)

    def queued_fires(self, limit: int = 100) -> list[FireRecord]:
        """Fires waiting for a free run (state ``queued``) of every schedule, oldest fire_time first."""
        c = FIRES.table.c
        return self._all(FIRES, FIRES.select.where(c.state == "queued").order_by(c.fire_time).limit(limit))

    def list_fires(self, schedule_id: str, limit: int = 100) -> list[FireRecord]:
        """Fires of a schedule, newest fire_time first."""
        c = FIRES.table.c
        stmt = FIRES.select.where(c.schedule_id == schedule_id).order_by(c.fire_time.desc()).limit(limit)
        return self._all(FIRES, stmt)

    # api keys and the audit log
    def put_api_key(self, key: ApiKeyRecord) -> None:
        """Insert or replace an API key."""
        self._upsert(API_KEYS, key)

    def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The API key with this id."""
        return self._one(API_KEYS, f"API key {key_id!r}", API_KEYS.by_key, {"_key": key_id})

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, oldest first."""
        return self._in_order(API_KEYS)

    def lock_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, oldest first, their rows locked ``FOR UPDATE`` (SQLite's write transaction is the lock)."""
        with self._tx():
            return self._all(API_KEYS, API_KEYS.select.order_by(API_KEYS.table.c.seq).with_for_update())

    def update_api_key(self, key_id: str, **changes: Any) -> None:
        """Set fields of an API key (last_used_at, revoked_at)."""
        self._cas(API_KEYS, key_id, None, changes)

    def insert_audit(self, entry: AuditRecord) -> None:
        """Append to the audit log."""
        self._insert(AUDIT, [AUDIT.row(entry)], f"audit entry {entry.audit_id!r}")

    def list_audit(self, limit: int = 100, offset: int = 0) -> list[AuditRecord]:
        """Audit entries, newest first."""
        return self._all(AUDIT, AUDIT.select.order_by(AUDIT.table.c.seq.desc()).limit(limit).offset(offset))

    # queue limits (the claim honours them: sql_claim.py)
    def set_queue_limit(self, queue: str, max_running: int | None) -> None:
        """Let at most ``max_running`` tasks of ``queue`` run at once across all workers; None removes the limit."""
        table = queue_limits
        with self._tx() as conn:
            if max_running is None:
                conn.execute(sa.delete(table).where(table.c.queue == queue))
            else:
                stmt = self._upsert_insert(table).values(queue=queue, max_running=max_running)
                conn.execute(stmt.on_conflict_do_update(index_elements=["queue"], set_={"max_running": max_running}))
            self._wake(limits=[queue])  # a raised limit may make waiting tasks claimable
        self._limits_seen.forget()

    def queue_limits(self) -> dict[str, int]:
        """Every queue limit: queue name -> max_running."""
        with self._tx(write=False) as conn:
            return dict(conn.execute(QUEUE_LIMITS).all())
