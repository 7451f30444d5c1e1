"""Proof of life of the engines holding tasks' in-process functions: a ``holders`` row per holding engine.

A task whose function only one engine holds (``tasks.holder``, revision 0006) waited for good when that engine's
process died without shutting down (killed, out of memory, a notebook kernel restarted). The holding engine now
renews ``expires_at`` with its heartbeat while it holds anything, and the heartbeat of any worker pool cancels the
unfinished tasks of a holder whose proof expired, setting ``swept_at`` so that the holder, if it was only asleep,
learns of it at its next renewal. Tasks held before this revision have no row and are left as they were.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the holders table."""
    op.create_table(
        "holders",
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("swept_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("holder", name="pk_holders"),
    )


def downgrade() -> None:
    """Drop the holders table."""
    op.drop_table("holders")
