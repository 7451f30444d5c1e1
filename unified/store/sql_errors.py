"""How the SQL stores turn the driver's errors into unified's: a lost or unusable database is a StoreError, a
transaction the database aborted to break a deadlock a StoreConflict (safe to run again); anything else, such as a
constraint violation the verb handles itself, goes through unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from unified.errors import StoreConflict, StoreError

CONFLICT_STATES = ("40P01", "40001")  # PostgreSQL: deadlock detected, serialization failure


@contextmanager
def database_errors(where: str) -> Iterator[None]:
    """Translate driver errors raised in the block; ``where`` names the database (without its password)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in CONFLICT_STATES:
            raise StoreConflict(
                f"the database {where} aborted the transaction ({exc.orig}); nothing of it was kept: run it again"
            ) from exc
        lost = isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or exc.connection_invalidated
        if not lost:
            raise
        raise StoreError(
            f"the database {where} could not be used ({exc.orig}); check that it is reachable and writable"
        ) from exc


def checkout(engine: sa.Engine, where: str) -> sa.Connection:
    """A pooled connection of ``engine``. When every reconnect the pool tries on checkout fails (a server dropping
    sessions as fast as they are made), or no connection is free within the pool's timeout, SQLAlchemy raises its
    own errors, not a driver's: the database cannot be used either way, so they are a StoreError, which workers wait
    out, rather than an error that ends their threads."""
    try:
        return engine.connect()
    except (sa.exc.InvalidRequestError, sa.exc.TimeoutError) as exc:
        raise StoreError(
            f"the database {where} could not be used (no working connection: {exc}); check that it is reachable "
            "and that the pool is large enough for this process's threads"
        ) from exc
