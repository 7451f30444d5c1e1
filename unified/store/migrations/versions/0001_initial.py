"""The initial schema: tasks and their dependencies, attempts, logs, runs, workflows, versions, alerts and their
rules, schedules and their fires, API keys, the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(255)
CLAIMABLE = "state IN ('queued', 'retrying')"


def _seq() -> sa.Column:
    return sa.Column("seq", SEQ, primary_key=True, autoincrement=True)


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "tasks",
        _seq(),
        sa.Column("id", ID, nullable=False),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("dependencies", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("queued_at", sa.Double, nullable=True),
        sa.Column("started_at", sa.Double, nullable=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("not_before", sa.Double, nullable=True),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("schedule_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_tasks"),
        sa.UniqueConstraint("id", name="uq_tasks_id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_tasks_claim",
        "tasks",
        [sa.text("priority DESC"), "seq"],
        sqlite_where=sa.text(CLAIMABLE),
        postgresql_where=sa.text(CLAIMABLE),
    )
    op.create_index("ix_tasks_state", "tasks", ["state", "seq"])
    op.create_index("ix_tasks_run", "tasks", ["run_id", "seq"])
    op.create_index("ix_tasks_schedule", "tasks", ["schedule_id", "seq"])
    op.create_index("ix_tasks_not_before", "tasks", ["state", "not_before"])
    op.create_index("ix_tasks_lease", "tasks", ["state", "lease_expires_at"])

    op.create_table(
        "task_deps",
        sa.Column("task_id", ID, nullable=False),
        sa.Column("depends_on", ID, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "depends_on", name="pk_task_deps"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_deps_task_id_tasks"),
    )
    op.create_index("ix_task_deps_depends_on", "task_deps", ["depends_on"])

    op.create_table(
        "attempts",
        sa.Column("task_id", ID, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "number", name="pk_attempts"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_attempts_task_id_tasks"),
    )

    op.create_table(
        "logs",
        _seq(),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_logs"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_logs_task_id_tasks"),
    )
    op.create_index("ix_logs_task", "logs", ["task_id", "ts"])

    op.create_table(
        "runs",
        _seq(),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("workflow_id", ID, nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double, nullable=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("schedule_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_runs"),
        sa.UniqueConstraint("run_id", name="uq_runs_run_id"),
    )
    op.create_index("ix_runs_created", "runs", ["created_at", "seq"])
    op.create_index("ix_runs_workflow", "runs", ["workflow_id", "created_at"])
    op.create_index("ix_runs_schedule", "runs", ["schedule_id", "created_at"])

    op.create_table(
        "workflows",
        _seq(),
        sa.Column("workflow_id", ID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tasks", sa.Text, nullable=False),
        sa.Column("current_version", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_workflows"),
        sa.UniqueConstraint("workflow_id", name="uq_workflows_workflow_id"),
    )

    op.create_table(
        "versions",
        sa.Column("workflow_id", ID, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("tasks", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "number", name="pk_versions"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.workflow_id"], name="fk_versions_workflow_id_workflows"),
    )

    op.create_table(
        "alerts",
        _seq(),
        sa.Column("alert_id", ID, nullable=False),
        sa.Column("event", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("rule_id", ID, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_alerts"),
        sa.UniqueConstraint("alert_id", name="uq_alerts_alert_id"),
    )
    op.create_index("ix_alerts_created", "alerts", ["created_at", "seq"])

    op.create_table(
        "alert_rules",
        _seq(),
        sa.Column("rule_id", ID, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("workflow", ID, nullable=True),
        sa.Column("task_name", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_alert_rules"),
        sa.UniqueConstraint("rule_id", name="uq_alert_rules_rule_id"),
    )

    op.create_table(
        "schedules",
        _seq(),
        sa.Column("schedule_id", ID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("cron", sa.String(255), nullable=True),
        sa.Column("interval_seconds", sa.Double, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_at", sa.Double, nullable=True),
        sa.Column("end_at", sa.Double, nullable=True),
        sa.Column("catchup", sa.Boolean, nullable=False),
        sa.Column("max_active_runs", sa.Integer, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("next_fire_at", sa.Double, nullable=True),
        sa.Column("last_fire_at", sa.Double, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_schedules"),
        sa.UniqueConstraint("schedule_id", name="uq_schedules_schedule_id"),
    )
    op.create_index("ix_schedules_due", "schedules", ["paused", "next_fire_at"])

    op.create_table(
        "fires",
        sa.Column("schedule_id", ID, nullable=False),
        sa.Column("fire_time", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("task_id", ID, nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", "fire_time", name="pk_fires"),
    )

    op.create_table(
        "api_keys",
        _seq(),
        sa.Column("key_id", ID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("owner", sa.Text, nullable=True),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("last_used_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_api_keys"),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
    )

    op.create_table(
        "audit",
        _seq(),
        sa.Column("audit_id", ID, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("key_name", sa.Text, nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("outcome", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_audit"),
        sa.UniqueConstraint("audit_id", name="uq_audit_audit_id"),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in (
        *("audit", "api_keys", "fires", "schedules", "alert_rules", "alerts"),
        *("versions", "workflows", "runs", "logs", "attempts", "task_deps", "tasks"),
    ):
        op.drop_table(table)
