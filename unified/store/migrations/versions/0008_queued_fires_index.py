"""``ix_fires_queued``: the backfilled fire times waiting for a free run, found without reading every fire.

Each scheduler pass looks for fires in state ``queued`` (a backfill beyond the schedule's ``max_active_runs``); the
fires table keeps one row per fire time of every schedule for good, so without an index that look reads all of them.
The index holds only the queued rows, oldest fire time first, and costs nothing to the fires that start at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

QUEUED = "state = 'queued'"


def upgrade() -> None:
    """Add the partial index of queued fires."""
    where = sa.text(QUEUED)
    op.create_index("ix_fires_queued", "fires", ["fire_time"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_fires_queued", table_name="fires")
