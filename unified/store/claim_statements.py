"""The claim's statements, built once with bind parameters (see ``sql_claim`` for how the store runs them): the pick of
the best claimable tasks, the UPDATE that claims them, and on PostgreSQL the same recording the attempts' starts.
Split out of ``schema.py``, whose tables they read."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from unified.store.schema import CLAIMABLE_SQL, FREE_SQL, TASKS, Time, attempts, queue_limits, tasks

# a claim takes tasks any engine can run, and those whose in-process function the claiming engine holds (_holder)
HELD_BY_CLAIMER = tasks.c.holder == sa.bindparam("_holder")
HELD_HERE = sa.or_(tasks.c.holder.is_(None), HELD_BY_CLAIMER)


def pick_statement(where: sa.ColumnElement[bool] | None, limit: Any = None, held: bool = True) -> sa.Select[Any]:
    """The seqs (and priorities) of claimable tasks, best first; on PostgreSQL they are locked, skipping rows others
    hold. ``where`` narrows the queues; ``limit`` defaults to the ``_limit`` bind parameter.

    The best of two ordered index walks: the tasks any engine can run (``ix_tasks_claim``) and those the claiming
    engine holds (``ix_tasks_claim_held``, by holder). One walk of all claimable tasks, passing by those of other
    holders one row at a time, took 9-14 ms a claim with 20,000 of them queued ahead (0.5-2 ms without).
    ``held=False``: the first walk alone, for a claimer that holds no function (the union cost W1 SQLite 5%)."""
    c = tasks.c
    # constants as SQL text, not bound: the claim then binds only the caller's values (see claim_statement)
    due = sa.or_(c.state == sa.literal_column("'queued'"), c.not_before.is_(None), c.not_before <= sa.bindparam("_now"))
    limit = sa.bindparam("_limit") if limit is None else limit
    if not held:
        return _walk(sa.text(FREE_SQL), due, where, limit, "ix_tasks_claim")
    walks = []
    for index, whose in (("ix_tasks_claim", sa.text(FREE_SQL)), ("ix_tasks_claim_held", HELD_BY_CLAIMER)):
        walk = _walk(whose, due, where, limit, index).subquery()
        walks.append(sa.select(walk.c.seq, walk.c.priority))
    both = sa.union_all(*walks).subquery("picked")
    best = sa.select(both.c.seq, both.c.priority).order_by(both.c.priority.desc(), both.c.seq)
    return best.limit(limit).offset(sa.literal_column("0"))


def _walk(
    whose: Any, due: sa.ColumnElement[bool], where: sa.ColumnElement[bool] | None, limit: Any, index: str
) -> sa.Select[Any]:
    """One ordered walk of a claim index: the claimable tasks of ``whose``, best first, locked on PostgreSQL."""
    c = tasks.c
    pick = sa.select(c.seq, c.priority).where(sa.text(CLAIMABLE_SQL), whose, due)  # the text: the index's own
    return (
        (pick if where is None else pick.where(where))
        .order_by(c.priority.desc(), c.seq)
        .limit(limit)
        .offset(sa.literal_column("0"))  # SQLite's dialect adds an OFFSET to every LIMIT: a bound 0 if not given
        .with_for_update(skip_locked=True)
        .with_hint(tasks, f"INDEXED BY {index}", "sqlite")  # SQLite's planner may not pick it before ANALYZE
    )


def claim_statement(seqs: Any, from_pending: bool = False) -> sa.Update:
    """The claim: an UPDATE of the tasks whose seq is in ``seqs`` (a subquery of picked rows, or a list).
    ``from_pending``: some may be pending tasks released in passing, whose ``queued_at`` is set too.

    Its constants are written into the SQL rather than bound: with every parameter the caller's, the store runs it
    on the driver's cursor without SQLAlchemy building the parameters (see ``sql_direct``), on every claim."""
    c = tasks.c
    now = sa.bindparam("_now", type_=Time)
    queued_at = {"queued_at": sa.case((c.state == sa.literal_column("'pending'"), now), else_=c.queued_at)}
    return (
        sa.update(tasks)
        .where(c.seq.in_(seqs))
        .values(
            state=sa.literal_column("'running'"),
            attempts=c.attempts + sa.literal_column("1"),
            started_at=sa.func.coalesce(c.started_at, now),
            lease_owner=sa.bindparam("_worker"),
            lease_expires_at=sa.bindparam("_until"),
            **(queued_at if from_pending else {}),
        )
        .returning(*TASKS.columns)
    )


def _picked(where: sa.ColumnElement[bool] | None, held: bool = True) -> sa.Select[Any]:
    picked = pick_statement(where, held=held).subquery("best")
    return sa.select(picked.c.seq)


IN_QUEUES = tasks.c.queue.in_(sa.bindparam("_queues", expanding=True))
# the claim when no queue served has a limit, checked in the same statement: one round trip instead of two
ANY_LIMIT = sa.exists().where(queue_limits.c.queue.is_not(None))
ANY_LIMIT_IN = sa.exists().where(queue_limits.c.queue.in_(sa.bindparam("_queues", expanding=True)))
CLAIM_UNLIMITED = claim_statement(_picked(~ANY_LIMIT))
CLAIM_UNLIMITED_IN = claim_statement(_picked(sa.and_(IN_QUEUES, ~ANY_LIMIT_IN)))
# the same for a claimer that holds no in-process function: the free tasks' walk alone
CLAIM_FREE = claim_statement(_picked(~ANY_LIMIT, held=False))
CLAIM_FREE_IN = claim_statement(_picked(sa.and_(IN_QUEUES, ~ANY_LIMIT_IN), held=False))
HAS_LIMIT, HAS_LIMIT_IN = sa.select(ANY_LIMIT), sa.select(ANY_LIMIT_IN)


def starting_statement(claim: sa.Update) -> sa.Select[Any]:
    """PostgreSQL: ``claim`` that also records the start of each claimed attempt, in the same statement."""
    claimed = claim.cte("claimed")
    starts = sa.select(
        claimed.c.id,
        claimed.c.attempts,
        sa.literal("running"),
        sa.cast(sa.bindparam("_now"), attempts.c.started_at.type),
        sa.cast(sa.bindparam("_worker"), attempts.c.worker.type),
    )
    started = sa.insert(attempts).from_select(["task_id", "number", "state", "started_at", "worker"], starts)
    return sa.select(*claimed.c).add_cte(started.cte("started"))


START_UNLIMITED = starting_statement(CLAIM_UNLIMITED)
START_UNLIMITED_IN = starting_statement(CLAIM_UNLIMITED_IN)
START_FREE, START_FREE_IN = starting_statement(CLAIM_FREE), starting_statement(CLAIM_FREE_IN)
CLAIM_SEQS = claim_statement(sa.bindparam("_seqs", expanding=True))
