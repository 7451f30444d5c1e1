"""The engine holding a task's in-process function: only that engine claims the task (and cancels it when it shuts
down: an index finds them).

A lambda, a closure or a function of ``__main__`` exists only in the process that queued it. Without this column any
worker of the database claimed such a task and failed it for good (another TaskManager on the same SQLite file, a
notebook's re-created one, a `unified worker` or server process). Rows written before this revision have none (NULL):
claimed by anyone, as before.

Also ``tasks.gained_dependants``: on PostgreSQL a task added on an unfinished task marks it, so that the one-statement
outcome of that task, whose snapshot may predate the insert, looks for its dependants again (it left them pending).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add tasks.holder."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("holder", sa.String(255), nullable=True))
        batch.add_column(sa.Column("gained_dependants", sa.Boolean, nullable=False, server_default=sa.false()))
    where = sa.text("holder IS NOT NULL")
    op.create_index("ix_tasks_holder", "tasks", ["holder", "seq"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    """Drop tasks.holder."""
    op.drop_index("ix_tasks_holder", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("gained_dependants")
        batch.drop_column("holder")
