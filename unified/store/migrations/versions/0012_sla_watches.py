"""``sla_watches``: the SLA deadlines of tasks and runs, stored with them and settled once by any process.

A task or run declaring ``sla_seconds`` was watched only in the memory of the process that submitted it: if that
process stopped, no ``sla_missed`` was ever raised. The engine now writes a row per deadline in the transaction that
stores the work; the SLA watch of any process reads the due ones (the partial index ``ix_sla_watches_due`` holds only
those not settled yet) and settles each by compare-and-set on ``outcome``, so exactly one raises it. Work submitted
before this revision has no row and is not watched.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UNSETTLED = "outcome IS NULL"


def upgrade() -> None:
    """Create the sla_watches table and its index of unsettled deadlines."""
    op.create_table(
        "sla_watches",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("deadline", sa.Double, nullable=False),
        sa.Column("sla_seconds", sa.Double, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("settled_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_sla_watches"),
    )
    where = sa.text(UNSETTLED)
    op.create_index("ix_sla_watches_due", "sla_watches", ["deadline"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    """Drop the sla_watches table."""
    op.drop_index("ix_sla_watches_due", table_name="sla_watches")
    op.drop_table("sla_watches")
