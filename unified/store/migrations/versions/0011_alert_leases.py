"""``alerts.owner`` and ``alerts.lease_expires_at``: a pending alert is leased to the process delivering it.

An alert was stored ``pending`` and put on an in-memory queue of the process whose engine saw the event; that
process killed before delivering it left it pending for good. Now the alert service that stores it leases it
(renewing the lease while it queues and sends it), and the alert service of any other process takes over the pending
alerts whose lease lapsed, by compare-and-set, and delivers them. ``ix_alerts_pending`` holds only pending alerts, by
lease, which is what both read. Alerts left pending before this revision have no lease and stay as they were.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PENDING = "status = 'pending'"


def upgrade() -> None:
    """Add the lease columns of alerts and the partial index of pending alerts."""
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.Double, nullable=True))
    where = sa.text(PENDING)
    op.create_index("ix_alerts_pending", "alerts", ["lease_expires_at"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_alerts_pending", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
