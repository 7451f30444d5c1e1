"""Task indexes that only hold the rows their queries look for, so most state changes write fewer index pages.

The retry-time and lease indexes cover just the retrying and the running tasks (the only ones their queries read),
and the run and schedule indexes skip tasks without a run or a schedule. A task's insert then writes five index
entries instead of eight, and each state change fewer; with SQLite every page written is a page synced at commit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# name: (columns, the rows it holds)
PARTIAL = {
    "ix_tasks_run": (["run_id", "seq"], "run_id IS NOT NULL"),
    "ix_tasks_schedule": (["schedule_id", "seq"], "schedule_id IS NOT NULL"),
    "ix_tasks_not_before": (["not_before"], "state = 'retrying'"),
    "ix_tasks_lease": (["lease_expires_at"], "state = 'running'"),
}
FULL = {
    "ix_tasks_run": ["run_id", "seq"],
    "ix_tasks_schedule": ["schedule_id", "seq"],
    "ix_tasks_not_before": ["state", "not_before"],
    "ix_tasks_lease": ["state", "lease_expires_at"],
}


def upgrade() -> None:
    """Replace four task indexes with partial ones."""
    for name, (columns, where) in PARTIAL.items():
        op.drop_index(name, table_name="tasks")
        op.create_index(name, "tasks", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    """Put back the full indexes of revision 0002."""
    for name, columns in FULL.items():
        op.drop_index(name, table_name="tasks")
        op.create_index(name, "tasks", columns)
