"""The SQL store's claim, with per-queue concurrency limits that hold across every worker of a database.

Without limits on the queues served, a claim is one ``UPDATE ... WHERE seq IN (SELECT ... FOR UPDATE SKIP LOCKED)``
whose subquery also checks that none of them has a limit; on PostgreSQL the same statement also inserts the rows
of the attempts it starts (a data-modifying CTE), and outside a caller's transaction it runs alone in autocommit:
one round trip for the whole claim. When that finds nothing and some of the queues are limited, the claim locks
their ``queue_limits`` rows (``FOR UPDATE``, in queue order, so claimers of a limited queue take turns and never
deadlock; SQLite's ``BEGIN IMMEDIATE`` already serialises them), counts their running tasks, then picks the best
candidates of the unlimited queues and at most the free room of each limited one, and updates the best ``limit`` of
those. A task leaves ``running`` without the lock: the count only falls, so the limit still holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from unified.store.claim_statements import (
    ANY_LIMIT,
    ANY_LIMIT_IN,
    CLAIM_FREE,
    CLAIM_FREE_IN,
    CLAIM_SEQS,
    CLAIM_UNLIMITED,
    CLAIM_UNLIMITED_IN,
    HAS_LIMIT,
    HAS_LIMIT_IN,
    HELD_HERE,
    IN_QUEUES,
    START_FREE,
    START_FREE_IN,
    START_UNLIMITED,
    START_UNLIMITED_IN,
    claim_statement,
    pick_statement,
    starting_statement,
)
from unified.store.records import AttemptRecord, TaskRecord
from unified.store.schema import (
    ATTEMPTS,
    CHUNK,
    EXPIRED_LEASES,
    HELD_BY,
    LEASES_OF,
    LOCK_QUEUE_LIMITS,
    LOCK_QUEUE_LIMITS_OF,
    TASKS,
    ByIds,
    by_ids,
    tasks,
)
from unified.store.sql_direct import DirectStatements
from unified.utils import chunks


def _claim_with_released(where: sa.ColumnElement[bool], held: bool) -> ByIds:
    """The unlimited claim whose candidates are the best claimable tasks and the released pending ones (``_ids``),
    best first: one statement, the released ones queued in passing. ``held``: held tasks of the claimer too."""

    def build(released: sa.ColumnElement[bool]) -> sa.Update:
        c = tasks.c
        queued = pick_statement(where, held=held).subquery("queued")
        # the state compared as an expression (state || ''), not through an index: else SQLite reads every pending
        # task by the state index and checks each against the few released ids
        is_pending = c.state.concat(sa.literal_column("''")) == sa.literal_column("'pending'")
        whose = HELD_HERE if held else c.holder.is_(None)
        pending = sa.select(c.seq, c.priority).where(released, is_pending, whose, where)
        both = sa.union_all(sa.select(queued.c.seq, queued.c.priority), pending).subquery("candidates")
        best = sa.select(both.c.seq).order_by(both.c.priority.desc(), both.c.seq).limit(sa.bindparam("_limit"))
        return claim_statement(best.offset(sa.literal_column("0")), from_pending=True)

    return by_ids(tasks.c.id, build)


# by (queues given, claimer holding functions): of any queue or the given ones; with the claimer's held tasks or not
CLAIM_RELEASED = {
    (given, held): _claim_with_released(sa.and_(IN_QUEUES, ~ANY_LIMIT_IN) if given else ~ANY_LIMIT, held)
    for given in (False, True)
    for held in (False, True)
}
# PostgreSQL: the same, recording the attempts' starts in the statement (SQLite has no use for the JSON form here)
START_RELEASED = {key: ByIds(starting_statement(claim.array), claim.json) for key, claim in CLAIM_RELEASED.items()}


class SqlClaims:
    """SqlStore's claim and lease verbs (mixed in; they use the store's transactions and direct statements)."""

    _notifies: bool
    _local: Any
    _direct: DirectStatements
    _tx: Any
    _wrap_errors: Any
    _insert: Any
    _autocommit: Any
    _all: Any
    _rows_by_ids: Any
    _limits_seen: Any
    update_tasks: Any

    def claim_tasks(self, worker: str, now: float, lease_seconds: float, limit: int = 1,
                    queues: Iterable[str] | None = None, released: Sequence[str] = (),
                    holder: str | None = None) -> list[TaskRecord]:  # fmt: skip
        """Atomically take up to ``limit`` claimable tasks (queued, or retrying with not_before <= now) and record
        the start of their attempts. Highest priority first, then lowest seq, never beyond a queue's limit.
        ``released``: pending tasks that compete as if queued (see Store); queued first where a limit applies.
        ``holder``: the claiming engine, which may take the tasks it holds the functions of (see Store)."""
        names = None if queues is None else list(queues)
        if limit <= 0 or names == []:
            return []
        params = {"_now": now, "_limit": limit, "_worker": worker, "_until": now + lease_seconds, "_queues": names,
                  "_holder": holder}  # fmt: skip
        alone = None if released else self._autocommit()
        if alone is not None:
            with self._wrap_errors(), alone as conn:
                rows = self._direct.rows(conn, _unlimited(names, holder, True), params)
                # nothing claimable and no limit to look behind: no transaction for the limited path
                if not rows and not (
                    self._may_be_limited(conn)
                    and conn.execute(HAS_LIMIT if names is None else HAS_LIMIT_IN, params).scalar()
                ):
                    return []
            if rows:
                return _sorted_records(rows)
        with self._tx() as conn:
            rows, recorded = [], False
            if len(released) > CHUNK:  # too many for one parameter: queued first, then claimed as usual
                released = self._queue_released(released, now)
            if released:
                fused, recorded = (START_RELEASED if self._notifies else CLAIM_RELEASED), self._notifies
                rows = self._rows_by_ids(conn, fused[names is not None, holder is not None], list(released), params)
            elif alone is None:  # the unlimited claim has not run yet
                unlimited, recorded = _unlimited(names, holder, self._notifies), self._notifies
                rows = self._direct.rows(conn, unlimited, params)
            if not rows and self._may_be_limited(conn):
                released = self._queue_released(released, now)  # a limit may apply: the limited path takes queued ones
                rows, recorded = _claim_limited(conn, self._direct, names, params), False
            claimed = _sorted_records(rows)
            if self._notifies and claimed:
                self._local.wakeups.taken([t.id for t in claimed])
            if claimed and not recorded:
                starts = [AttemptRecord(t.id, t.attempts, "running", now, worker=worker) for t in claimed]
                # no savepoint: the claim fails as a whole if this fails
                rows = [ATTEMPTS.row(a) for a in starts]
                self._insert(ATTEMPTS, rows, "one of these attempts", "task of an attempt", isolated=False)
        return claimed

    def _may_be_limited(self, conn: sa.Connection) -> bool:
        """Whether an empty unlimited claim must look behind queue limits: on PostgreSQL only while some exist (as
        last seen, see LimitsSeen: each look is a round trip, and limits are rare); SQLite's look costs no more."""
        return not self._notifies or self._limits_seen.any(conn)

    def _queue_released(self, released: Sequence[str], now: float) -> Sequence[str]:
        """Queue the released tasks still pending; returns none left to pass to a claim."""
        if released:
            self.update_tasks(
                [(task_id, "pending", None, {"state": "queued", "queued_at": now}) for task_id in released]
            )
        return ()

    def extend_leases(self, worker: str, leases: dict[str, int], until: float) -> list[str]:
        """Extend the leases ``worker`` holds (task id -> attempt number); returns the ids still held."""
        if not leases:
            return []
        c = tasks.c
        held: set[str] = set()
        with self._tx() as conn:
            for chunk in chunks(list(leases.items()), CHUNK):
                stmt = (
                    sa.update(tasks)
                    .where(sa.tuple_(c.id, c.attempts).in_(chunk), c.state == "running", c.lease_owner == worker)
                    .values(lease_expires_at=until)
                    .returning(c.id)
                )
                held.update(conn.execute(stmt).scalars())
        return [task_id for task_id in leases if task_id in held]

    def expired_leases(self, now: float, limit: int = 100) -> list[TaskRecord]:
        """Running tasks whose lease expired before ``now``."""
        return self._all(TASKS, EXPIRED_LEASES, {"_now": now, "_limit": limit})

    def held_tasks(self, holder: str) -> list[str]:
        """The ids of the unfinished tasks held by ``holder``, oldest first."""
        with self._tx(write=False) as conn:
            return [row[0] for row in self._direct.rows(conn, HELD_BY, {"_holder": holder})]

    def leases_of(self, worker: str, expiring_before: float) -> dict[str, int]:
        """The running tasks leased to ``worker`` whose lease expires before ``expiring_before``: id -> attempt."""
        with self._tx(write=False) as conn:
            return dict(self._direct.rows(conn, LEASES_OF, {"_worker": worker, "_before": expiring_before}))


def _sorted_records(rows: list[Any]) -> list[TaskRecord]:
    claimed = [TASKS.record(row) for row in rows]
    claimed.sort(key=lambda t: (-t.priority, t.seq))
    return claimed


def _unlimited(names: list[str] | None, holder: str | None, starting: bool) -> Any:
    """The claim while no queue served has a limit: of the given queues or any; taking held tasks too only for a
    claimer that holds functions (a second index walk); ``starting``: recording the attempts too (PostgreSQL)."""
    statements = (
        (START_FREE, START_FREE_IN, START_UNLIMITED, START_UNLIMITED_IN)
        if starting
        else (CLAIM_FREE, CLAIM_FREE_IN, CLAIM_UNLIMITED, CLAIM_UNLIMITED_IN)
    )
    return statements[(names is not None) + 2 * (holder is not None)]


def _claim_limited(
    conn: sa.Connection, direct: DirectStatements, names: list[str] | None, params: dict[str, Any]
) -> list[Any]:
    """The claim when some of the queues served are limited (nothing when none is: the unlimited claim ran).

    The limits are read on the driver's cursor: a worker's report claims after every batch, and this read is all
    that an empty claim costs beyond the unlimited one."""
    if names is None:
        limits: dict[str, int] = dict(direct.rows(conn, LOCK_QUEUE_LIMITS, {}))
    else:
        limits = dict(direct.rows(conn, LOCK_QUEUE_LIMITS_OF, {"_queues": names}))
    if not limits:
        return []
    running = dict(
        conn.execute(
            sa.select(tasks.c.queue, sa.func.count())
            .where(tasks.c.state == "running", tasks.c.queue.in_(list(limits)))
            .group_by(tasks.c.queue)
        ).all()
    )
    want = params["_limit"]
    picks: list[tuple[str | None, Any, int]] = []  # (queue, condition, how many) for each pick
    if names is None:
        picks.append((None, tasks.c.queue.not_in(list(limits)), want))
    elif unlimited := [q for q in names if q not in limits]:
        picks.append((None, tasks.c.queue.in_(unlimited), want))
    for queue, max_running in limits.items():
        room = min(want, max_running - running.get(queue, 0))
        if room > 0:
            picks.append((queue, tasks.c.queue == queue, room))
    candidates = [row for _, where, n in picks for row in conn.execute(pick_statement(where, n), params)]
    best = sorted(candidates, key=lambda row: (-row.priority, row.seq))[:want]
    if not best:
        return []
    return list(conn.execute(CLAIM_SEQS, {**params, "_seqs": [row.seq for row in best]}))
