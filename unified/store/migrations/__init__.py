"""Alembic migrations of the SQL store, configured in code (no alembic.ini): the head revision and the upgrade to it.

Revision ids are zero-padded numbers that start each file name in ``versions/`` (``0001_initial.py``), so the head
is found without loading Alembic; history is linear.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent
HEAD = max(path.name.split("_", 1)[0] for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` for these migrations, running on ``connection`` (or on ``url``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: sa.Connection) -> None:
    """Bring the database on ``connection`` to the head revision, inside the caller's transaction.

    A database without any of the store's tables gets the declared schema at once, stamped with the head revision
    (what running every migration builds, as tests/integration/test_migrations.py checks), without loading Alembic:
    a new SQLite file is ready in a quarter of the time (138 against 520 ms on a slow host), which is most of a first
    ``unified server``'s start after its imports. Databases with tables go through the migrations."""
    from unified.store.schema import metadata

    existing = set(sa.inspect(connection).get_table_names())
    if not existing & {*metadata.tables, VERSION_TABLE.name}:
        metadata.create_all(connection)
        VERSION_TABLE.create(connection)
        connection.execute(VERSION_TABLE.insert().values(version_num=HEAD))
        return
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


# the table Alembic keeps the revision in, as Alembic creates it
VERSION_TABLE = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
