"""Workflow names are unique: a workflows folder loaded by two servers at once cannot store one name twice.

A name was looked up, then inserted, so two processes registering the same workflow at the same moment could each
insert it (and each keep the schedule it declares in code: two runs per fire). Older databases may hold such
duplicates: every workflow but the oldest of a name is renamed ``<name> (<workflow_id>)`` first, so nothing is lost.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RENAME_LATER_DUPLICATES = """
UPDATE workflows SET name = name || ' (' || workflow_id || ')'
WHERE EXISTS (
    SELECT 1 FROM workflows AS older
    WHERE older.name = workflows.name
      AND (older.created_at < workflows.created_at
           OR (older.created_at = workflows.created_at AND older.seq < workflows.seq))
)
"""


def upgrade() -> None:
    """Rename all but the oldest workflow of each name, then index the names as unique."""
    op.execute(sa.text(RENAME_LATER_DUPLICATES))
    op.create_index("ux_workflows_name", "workflows", ["name"], unique=True)


def downgrade() -> None:
    """Drop the unique index (renamed workflows keep their new names)."""
    op.drop_index("ux_workflows_name", table_name="workflows")
