"""The SQL store's claim, with per-queue concurrency limits that hold across every worker of a database.

Without limits on the queues served, a claim is one ``UPDATE ... WHERE seq IN (SELECT ... FOR UPDATE SKIP LOCKED)``
whose subquery also checks that none of them has a limit. When that finds nothing and some of them are limited,
the claim locks their ``queue_limits`` rows (``FOR UPDATE``, in queue order, so claimers of a limited queue take
turns and never deadlock; SQLite's ``BEGIN IMMEDIATE`` already serialises them), counts their running tasks, then
picks the best candidates of the unlimited queues and at most the free room of each limited one, and updates the
best ``limit`` of those. A task leaves ``running`` without the lock: the count only falls, so the limit still holds.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from unified.store.schema import (
    CLAIM_SEQS,
    CLAIM_UNLIMITED,
    CLAIM_UNLIMITED_IN,
    LOCK_QUEUE_LIMITS,
    LOCK_QUEUE_LIMITS_OF,
    pick_statement,
    tasks,
)
from unified.store.sql_direct import DirectStatements


def claim_rows(
    conn: sa.Connection, direct: DirectStatements, names: list[str] | None, params: dict[str, Any]
) -> list[Any]:
    """Claim up to ``params["_limit"]`` tasks of the queues ``names`` (all when None) on ``conn``'s transaction."""
    if claimed := direct.rows(conn, CLAIM_UNLIMITED if names is None else CLAIM_UNLIMITED_IN, params):
        return claimed
    if names is None:
        limits: dict[str, int] = dict(conn.execute(LOCK_QUEUE_LIMITS).all())
    else:
        limits = dict(conn.execute(LOCK_QUEUE_LIMITS_OF, {"_queues": names}).all())
    if not limits:
        return []  # the first statement found nothing claimable
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
