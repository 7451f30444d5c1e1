"""How the SQL stores turn the driver's errors into unified's: a lost or unusable database is a StoreError, a
transaction the database aborted to break a deadlock a StoreConflict (safe to run again), text PostgreSQL cannot hold
a ValidationError; anything else, such as a constraint violation the verb handles itself, goes through unchanged."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from unified.errors import StoreConflict, StoreError, ValidationError

CONFLICT_STATES = ("40P01", "40001")  # PostgreSQL: deadlock detected, serialization failure


class database_errors:
    """Translate driver errors raised in the block; ``where`` names the database (without its password).

    A class, not a generator: every store verb enters one (about eight per chain step)."""

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if not isinstance(exc, sa.exc.DBAPIError):
            return False
        where = self.where
        if isinstance(exc, sa.exc.DataError) and "NUL" in str(exc.orig):  # PostgreSQL's text: SQLite takes it
            raise ValidationError("PostgreSQL text cannot hold the NUL character (\\u0000): remove it") from exc
        if getattr(exc.orig, "sqlstate", None) in CONFLICT_STATES:
            raise StoreConflict(
                f"the database {where} aborted the transaction ({exc.orig}); nothing of it was kept: run it again"
            ) from exc
        unusable = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or exc.connection_invalidated
        if not (unusable or type(exc) is sa.exc.DatabaseError):  # the plain kind: "file is not a database"
            return False
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
