"""Record the training run that produced a version; index the audit log by task.

``run_id`` ties a version to its run directory/experiment; history and audit queries
filter by task, which was a full scan of an ever-growing append-only table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_version", sa.Column("run_id", sa.String(200), nullable=True))
    op.create_index("ix_audit_event_task", "audit_event", ["task"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_task", table_name="audit_event")
    with op.batch_alter_table("task_version") as batch:
        batch.drop_column("run_id")
