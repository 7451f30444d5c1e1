"""Held tasks leave the claim index for one of their own, so other engines' claims no longer walk past them.

``ix_tasks_claim`` held every claimable task, and a claim filtered out those another engine holds (``tasks.holder``,
revision 0006) one by one: 20,000 held tasks queued ahead made each claim of every other engine take 9-14 ms instead
of 0.5-2. It now holds the tasks any engine can run, and ``ix_tasks_claim_held`` (holder, priority, seq) the held ones,
which a claim walks only for its own holder.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CLAIMABLE = "state IN ('queued', 'retrying')"


def _claim_index(where: str) -> None:
    op.drop_index("ix_tasks_claim", table_name="tasks")
    clause = sa.text(where)
    op.create_index("ix_tasks_claim", "tasks", [sa.text("priority DESC"), "seq"], sqlite_where=clause,
                    postgresql_where=clause)  # fmt: skip


def upgrade() -> None:
    """Split the claim index into the free tasks' and the held ones'."""
    _claim_index(f"{CLAIMABLE} AND holder IS NULL")
    held = sa.text(f"{CLAIMABLE} AND holder IS NOT NULL")
    op.create_index("ix_tasks_claim_held", "tasks", ["holder", sa.text("priority DESC"), "seq"], sqlite_where=held,
                    postgresql_where=held)  # fmt: skip


def downgrade() -> None:
    """One claim index for all claimable tasks again."""
    op.drop_index("ix_tasks_claim_held", table_name="tasks")
    _claim_index(CLAIMABLE)
