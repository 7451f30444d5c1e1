"""The SQL store's alerts (with the leases of pending ones, migration 0011) and SLA watches (migration 0012).

A mixin of :class:`unified.store.sql.SqlStore`. A takeover is one UPDATE of the pending alerts whose lease expired,
picked by a CTE (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent takers pass each other's rows by) and
checked again by the UPDATE's own condition, so of two takers exactly one leases each alert. A watch is settled by an
UPDATE conditioned on its outcome still being NULL. Both read only the partial indexes of pending alerts and of
unsettled watches, so sent alerts and settled deadlines cost the periodic checks nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from unified.store.records import AlertRecord, SlaWatchRecord
from unified.store.schema import ALERTS, CHUNK, SLA_WATCHES, Codec, alerts, sla_watches
from unified.utils import chunks

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert

_PENDING = alerts.c.status == "pending"
_LAPSED = sa.and_(_PENDING, alerts.c.lease_expires_at < sa.bindparam("_now"))
# picked in a CTE, evaluated once: as an IN subquery PostgreSQL ran it again per row updated, and each run skipped
# the rows the statement had just updated and locked, taking one more alert per row beyond the limit
_PICKED = (
    sa.select(alerts.c.alert_id)
    .where(_LAPSED)
    .order_by(alerts.c.lease_expires_at, alerts.c.seq)
    .limit(sa.bindparam("_limit"))
    .with_for_update(skip_locked=True)
    .cte("picked")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
TAKE = (
    sa.update(alerts)
    # _LAPSED again, on the row as it is once locked: a concurrent taker's fresh lease is not expired
    .where(alerts.c.alert_id == _PICKED.c.alert_id, _LAPSED)
    .values(owner=sa.bindparam("_owner"), lease_expires_at=sa.bindparam("_until"))
    .returning(*ALERTS.columns)
)
RENEW = (
    sa.update(alerts)
    .where(
        _PENDING, alerts.c.owner == sa.bindparam("_owner"), alerts.c.alert_id.in_(sa.bindparam("_ids", expanding=True))
    )
    .values(lease_expires_at=sa.bindparam("_until"))
)
_UNSETTLED = sla_watches.c.outcome.is_(None)
DUE = (
    SLA_WATCHES.select.where(_UNSETTLED, sla_watches.c.deadline <= sa.bindparam("_now"))
    .order_by(sla_watches.c.deadline)
    .limit(sa.bindparam("_limit"))
)
SETTLE = (
    sa.update(sla_watches)
    .where(sla_watches.c.kind == sa.bindparam("_kind"), sla_watches.c.key == sa.bindparam("_key"), _UNSETTLED)
    .values(outcome=sa.bindparam("_outcome"), settled_at=sa.bindparam("_at"))
)
NEXT_DEADLINE = sa.select(sa.func.min(sla_watches.c.deadline)).where(_UNSETTLED)


class SqlAlerts:
    """SqlStore's alert and SLA watch verbs (mixed in; they use the store's transactions)."""

    if TYPE_CHECKING:  # provided by SqlStore

        def _upsert_insert(self, table: sa.Table) -> Insert: ...
        def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]: ...
        def _all(self, codec: Codec[Any], stmt: sa.Select[Any], params: dict[str, Any] | None = None) -> list[Any]: ...
        def _insert(self, codec: Codec[Any], rows: list[dict[str, Any]], duplicate: str, parent: str = "") -> None: ...
        def _update(
            self, codec: Codec[Any], where: dict[str, Any], keys: int, values: dict[str, Any], what: str
        ) -> bool: ...
        def _cas(self, codec: Codec[Any], key: str, expected_state: str | None, changes: dict[str, Any]) -> bool: ...

    def insert_alert(self, alert: AlertRecord) -> None:
        """Store an alert."""
        self._insert(ALERTS, [ALERTS.row(alert)], f"alert {alert.alert_id!r}")

    def update_alert(self, alert_id: str, **changes: Any) -> None:
        """Set the delivery fields of an alert."""
        self._cas(ALERTS, alert_id, None, changes)

    def list_alerts(self, limit: int = 100, status: str | None = None) -> list[AlertRecord]:
        """Alerts, newest first; only those whose delivery is ``status`` when given."""
        c = alerts.c
        stmt = ALERTS.select.where(c.status == status) if status is not None else ALERTS.select
        return self._all(ALERTS, stmt.order_by(c.created_at.desc(), c.seq.desc()).limit(limit))

    def take_alerts(self, owner: str, now: float, until: float, limit: int = 100) -> list[AlertRecord]:
        """Lease to ``owner`` until ``until`` the pending alerts whose lease expired before ``now``, the longest
        expired first (one UPDATE: see the module docstring)."""
        params = {"_now": now, "_limit": limit, "_owner": owner, "_until": until}
        with self._tx() as conn:
            taken = [ALERTS.record(row) for row in conn.execute(TAKE, params)]
        return sorted(taken, key=lambda a: a.created_at)

    def renew_alerts(self, owner: str, until: float, alert_ids: Iterable[str]) -> int:
        """Extend to ``until`` the leases of those of ``alert_ids`` pending and leased to ``owner``; how many there
        were (one transaction, an UPDATE per CHUNK ids)."""
        ids = sorted(set(alert_ids))
        if not ids:
            return 0
        with self._tx() as conn:
            params = {"_owner": owner, "_until": until}
            return sum(conn.execute(RENEW, {**params, "_ids": chunk}).rowcount for chunk in chunks(ids, CHUNK))

    def update_owned_alert(self, alert_id: str, owner: str, /, **changes: Any) -> bool:
        """Set fields of an alert only while it is pending and leased to ``owner``; True if it changed."""
        where = {"alert_id": alert_id, "status": "pending", "owner": owner}
        return self._update(ALERTS, where, 1, ALERTS.changes(changes, alert_id), f"alert {alert_id!r}")

    # SLA watches
    def insert_sla_watches(self, watches: Iterable[SlaWatchRecord]) -> None:
        """Store deadlines to watch; one already stored (same kind and key) is left as it is."""
        rows = [SLA_WATCHES.row(w) for w in watches]
        if rows:
            stmt = self._upsert_insert(sla_watches).on_conflict_do_nothing(index_elements=["kind", "key"])
            with self._tx() as conn:
                conn.execute(stmt, rows)

    def due_sla_watches(self, now: float, limit: int = 100) -> list[SlaWatchRecord]:
        """Unsettled watches whose deadline is at or before ``now``, earliest first."""
        return self._all(SLA_WATCHES, DUE, {"_now": now, "_limit": limit})

    def settle_sla_watch(self, kind: str, key: str, outcome: str, at: float) -> bool:
        """Set the outcome of a watch if it has none yet; True if this call did."""
        with self._tx() as conn:
            params = {"_kind": kind, "_key": key, "_outcome": outcome, "_at": at}
            return bool(conn.execute(SETTLE, params).rowcount)

    def next_sla_deadline(self) -> float | None:
        """The earliest deadline among unsettled watches, or None."""
        with self._tx(write=False) as conn:
            return conn.execute(NEXT_DEADLINE).scalar()
