"""The hash of each workflow's draft, kept with it, so starting a run of an unchanged draft needs no hashing.

Rows written before this revision have none (NULL); the engine hashes their draft when it starts a run, as before,
and the next change of the draft stores it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add workflows.draft_hash."""
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("draft_hash", sa.String(128), nullable=True))


def downgrade() -> None:
    """Drop workflows.draft_hash."""
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("draft_hash")
