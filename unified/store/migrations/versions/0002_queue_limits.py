"""Per-queue concurrency limits that hold across every worker of a database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the queue_limits table."""
    op.create_table(
        "queue_limits",
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("max_running", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("queue", name="pk_queue_limits"),
    )


def downgrade() -> None:
    """Drop the queue_limits table."""
    op.drop_table("queue_limits")
