"""The SQL store's proofs of life of holding engines (table ``holders``, migration 0009).

An engine that holds the in-process functions of stored tasks renews its row with its heartbeat; the heartbeat of
any worker pool finds the rows that expired and sweeps them (marks ``swept_at``, then the engine cancels the tasks).
A holder that renews a swept or missing row writes it anew and learns that it was presumed dead. A mixin of
:class:`unified.store.sql.SqlStore`; none of it is on the path of a task (a renewal is one statement per heartbeat).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from unified.store.schema import holders

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert

_HOLDER = holders.c.holder == sa.bindparam("_holder")
RENEW = sa.update(holders).where(_HOLDER, holders.c.swept_at.is_(None)).values(expires_at=sa.bindparam("_until"))
EXPIRED = (
    sa.select(holders.c.holder)
    .where(holders.c.expires_at < sa.bindparam("_now"))
    .order_by(holders.c.expires_at, holders.c.holder)
    .limit(sa.bindparam("_limit"))
)
SWEEP = (
    sa.update(holders).where(_HOLDER, holders.c.expires_at < sa.bindparam("_now")).values(swept_at=sa.bindparam("_now"))
)
DROP = sa.delete(holders).where(_HOLDER)
DROP_SWEPT = DROP.where(holders.c.swept_at.is_not(None))


class SqlHolders:
    """SqlStore's holder verbs (mixed in; they use the store's transactions)."""

    if TYPE_CHECKING:  # provided by SqlStore

        def _upsert_insert(self, table: sa.Table) -> Insert: ...
        def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]: ...

    def renew_holder(self, holder: str, until: float) -> bool:
        """Prove ``holder`` alive until ``until``. True if its proof was there and not swept; else it is written anew
        (not swept) and False is returned: it never proved itself, or another engine presumed it dead."""
        with self._tx() as conn:
            if conn.execute(RENEW, {"_holder": holder, "_until": until}).rowcount:
                return True
            fresh = {"expires_at": until, "swept_at": None}
            insert = self._upsert_insert(holders).values(holder=holder, **fresh)
            conn.execute(insert.on_conflict_do_update(index_elements=["holder"], set_=fresh))
        return False

    def expired_holders(self, now: float, limit: int = 100) -> list[str]:
        """The holders whose proof of life expired before ``now`` (swept or not), the longest expired first."""
        with self._tx(write=False) as conn:
            return list(conn.execute(EXPIRED, {"_now": now, "_limit": limit}).scalars())

    def sweep_holder(self, holder: str, now: float) -> bool:
        """Mark ``holder`` swept at ``now`` if its proof is still expired then; False if it was renewed (or is gone)."""
        with self._tx() as conn:
            return bool(conn.execute(SWEEP, {"_holder": holder, "_now": now}).rowcount)

    def drop_holder(self, holder: str, only_swept: bool = False) -> None:
        """Delete ``holder``'s proof (it holds nothing more); with ``only_swept``, only while it is marked swept (a
        holder that renewed meanwhile keeps it)."""
        with self._tx() as conn:
            conn.execute(DROP_SWEPT if only_swept else DROP, {"_holder": holder})
