"""Alembic environment: runs the migrations on the connection handed over in ``config.attributes``, or on a URL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from unified.store.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Migrate the given connection, or open one on ``sqlalchemy.url`` (the alembic command line)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("unified migrations run online only: pass a connection or sqlalchemy.url")
main()
