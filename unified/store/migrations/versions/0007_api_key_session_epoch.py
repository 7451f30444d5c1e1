"""``api_keys.session_epoch``: signing out of the web UI raises it, which ends every session made with the key.

A session cookie is signed but held by the browser: without state on the server, a copy of it kept working after
sign-out until it expired (12 hours). The cookie carries the epoch it was made in; the key's row, read on every page
anyway, says whether that epoch is still current. Rows written before this revision start at 0.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add api_keys.session_epoch."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop api_keys.session_epoch."""
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("session_epoch")
